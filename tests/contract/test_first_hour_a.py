"""What a new user met in their first hour (issue 12, part A), each the test that would have caught it:
--early-stopping that always failed, cancel on an ended job, names that differ between commands,
options accepted where they do nothing, a scenario that could not reach a served simulator, an
empty --type answer that looked like a typo, a streak longer than the table, and a note repeated
on every command."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from kit import MODEL
import typer

from ftctl.backends.simulator import scenarios
from ftctl.output import terminal
from served import TOKEN, served

CREATE = ("create", "-t", "file-train", "-v", "file-val", "-m", MODEL)


# -- --early-stopping needs no --n-evals ------------------------------------------------------------


@pytest.mark.parametrize("extra,n_evals", [((), 10), (("--patience", "12"), 15),
                                           (("--patience", "8", "--warmup-evals", "3"), 13),
                                           (("--n-evals", "6"), 6)])
def test_early_stopping_alone_picks_a_number_of_evaluations(ftctl, extra, n_evals):
    result = ftctl(*CREATE, "--early-stopping", *extra, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["n_evals"] == n_evals


def test_without_early_stopping_the_default_is_still_no_evaluations(ftctl):
    assert ftctl(*CREATE, "--dry-run").json()["n_evals"] == 0


# -- cancel: the job is read first ------------------------------------------------------------------


@pytest.fixture
def no_prompt(monkeypatch):
    asked = []

    def confirm(text, **kwargs):
        asked.append(text)
        return False

    monkeypatch.setattr(typer, "confirm", confirm)
    return asked


@pytest.mark.parametrize("ended", ["completed", "cancelled", "error"])
@pytest.mark.parametrize("yes", [(), ("--yes",)])
def test_cancel_on_an_ended_job_says_so_once_and_exits_0(ftctl, no_prompt, monkeypatch, ended, yes):
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    if ended == "cancelled":
        job_id = ftctl(*CREATE, "-q", env={"FTCTL_SIM_SPEED": "0.01"}).stdout.strip()
        assert ftctl("cancel", job_id, "--yes", env={"FTCTL_SIM_SPEED": "0.01"}).exit_code == 0
    else:
        scenario = ("--sim-scenario", "error") if ended == "error" else ()
        job_id = ftctl(*CREATE, *scenario, "-q").stdout.strip()
    job = ftctl("retrieve", job_id, "--json").json()
    status = job["status"]
    assert status in (ended, "cancel_requested")
    result = ftctl("cancel", job_id, *yes)
    assert result.exit_code == 0
    assert no_prompt == []  # no question about a job that cannot be cancelled
    assert result.stdout == ""
    word = "is already being cancelled" if status == "cancel_requested" else "has already ended"
    assert result.problems == [f"{job_id} {word} ({status}); nothing to " +
                               ("do." if status == "cancel_requested" else "cancel.")]
    as_json = ftctl("cancel", job_id, *yes, "--json")
    assert as_json.exit_code == 0 and as_json.json()["status"] == status


def test_cancel_asks_only_about_a_running_job(ftctl, no_prompt, monkeypatch):
    monkeypatch.setattr(terminal.Terminal, "interactive", property(lambda self: True))
    slow = {"FTCTL_SIM_SPEED": "0.01"}
    job_id = ftctl(*CREATE, "-q", env=slow).stdout.strip()
    declined = ftctl("cancel", job_id, env=slow)
    assert declined.exit_code == 0
    (question,) = no_prompt
    assert question.startswith(f"Cancel {job_id} (") and "Completed steps are still billed" in question
    assert "Not cancelled; the job keeps running." in declined.stderr
    assert ftctl("retrieve", job_id, "--json", env=slow).json()["status"] not in ("cancelled", "cancel_requested")


# -- one name for one thing; options only where they apply ---------------------------------------------


def test_root_takes_json_and_fields_like_color(ftctl):
    job_id = ftctl(*CREATE, "-q").stdout.strip()
    assert ftctl("--json", "list").json()[0]["id"] == job_id
    assert ftctl("--fields", "id,status", "list").json() == [{"id": job_id, "status": "completed"}]
    bad = ftctl("--fields", "nope", "list")
    assert bad.exit_code == 2 and "unknown field 'nope'" in bad.stderr


@pytest.mark.parametrize("argv,flag", [
    (("sim", "serve", "--port", "0", "--backend", "sim"), "--backend"),
    (("sim", "serve", "--port", "0", "--base-url", "http://127.0.0.1:9"), "--base-url"),
    (("completion", "bash", "--backend", "together"), "--backend"),
    (("--backend", "together", "completion", "bash"), "--backend"),
    (("--base-url", "http://127.0.0.1:9", "sim", "serve", "--port", "0"), "--base-url"),
])
def test_options_that_do_not_apply_are_refused_in_one_line(ftctl, argv, flag):
    result = ftctl(*argv)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.problems
    assert flag in line


def test_sim_serve_takes_sim_scenario_as_create_does(ftctl):
    from ftctl.app import app

    serve = typer.main.get_command(app).get_command(None, "sim").get_command(None, "serve")
    shown = {o for p in serve.params if not p.hidden for o in p.opts}
    assert "--sim-scenario" in shown and "--scenario" not in shown


def test_a_scenario_per_job_reaches_a_served_simulator(ftctl, tmp_path):
    """--sim-scenario with --backend together sends X-Ftctl-Sim-Scenario: a preset by name, a file inline."""
    curve = [2.0, 1.5, 1.2, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.6]
    scenario_file = tmp_path / "curve.json"
    scenario_file.write_text(json.dumps({"eval_loss": curve, "steps_per_epoch": 20}))
    with served(tmp_path / "served") as server:
        api = {"TOGETHER_API_KEY": TOKEN}

        def on_server(*args):
            return ftctl(*args, "--backend", "together", "--base-url", server.url, env=api)

        failed = on_server(*CREATE, "--sim-scenario", "error", "--json")
        assert failed.exit_code == 0, failed.stderr
        assert on_server("retrieve", failed.json()["id"], "--json").json()["status"] == "error"

        made = on_server(*CREATE, "--n-evals", "10", "--sim-scenario", str(scenario_file), "--json")
        assert made.exit_code == 0, made.stderr
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            rows = http.get(f"/v1/fine-tunes/{made.json()['id']}/metrics").json()["metrics"]
        assert [r["eval/loss"] for r in rows if "eval/loss" in r] == curve
        assert made.json()["total_steps"] == 20

        unknown = on_server(*CREATE, "--sim-scenario", "flat")
        assert unknown.exit_code == 2 and "unknown --sim-scenario 'flat'" in unknown.stderr


def test_the_header_carries_a_preset_by_name_and_a_file_as_json():
    assert scenarios.header_value(scenarios.load("plateau")) == "plateau"
    inline = scenarios.from_data({"eval_loss": [1.0, "NaN"], "fail_at_step": 3}, name="x")
    assert json.loads(scenarios.header_value(inline)) == {"eval_loss": [1.0, "NaN"], "fail_at_step": 3}


# -- events --type that matches nothing -----------------------------------------------------------------


def test_events_of_a_type_not_in_the_log_say_which_types_are(ftctl):
    job_id = ftctl(*CREATE, "-q").stdout.strip()
    result = ftctl("events", job_id, "--type", "bogus")
    assert result.exit_code == 0 and result.stdout == ""
    note = [line for line in result.stderr.splitlines() if "bogus" in line]
    assert note and "job_pending" in note[0] and "job_complete" in note[0]
    found = ftctl("events", job_id, "--type", "job_complete")
    assert found.stdout and "bogus" not in found.stderr and "job_complete" not in found.stderr


# -- explain's streak and the evaluation table agree ------------------------------------------------------


def test_a_long_streak_shows_the_evaluations_the_table_shows(ftctl):
    job_id = ftctl(*CREATE, "--n-evals", "200", "--early-stopping", "--patience", "50", "--sim-scenario",
                   "plateau", "-q").stdout.strip()
    out = ftctl("metrics", job_id, "--no-chart").stdout
    table_steps = {line.split("\t")[1] for line in out.splitlines() if re.match(r"\d+\t\d+\t", line)}
    streak_steps = re.findall(r"^ +step (\d+) +eval_loss .*\(\d+ of 50\)", out, flags=re.M)
    assert 0 < len(streak_steps) < 40
    assert set(streak_steps) <= table_steps
    assert re.search(r"\.\.\. \d+ more evaluations, none below", out)
    explained = ftctl("explain", job_id).stdout
    assert re.findall(r"^ +step (\d+) +eval_loss .*\(\d+ of 50\)", explained, flags=re.M) == streak_steps


# -- the simulator note ---------------------------------------------------------------------------------


def test_the_simulator_note_is_shown_once_per_home_and_says_how_to_choose_it(ftctl, tmp_path):
    first, second = ftctl("list"), ftctl("list")
    (note,) = [line for line in first.stderr.splitlines() if line.startswith("Note:")]
    assert "embedded simulator" in note and "FTCTL_BACKEND=sim" in note
    assert second.stderr == ""
    other_home = ftctl("list", env={"FTCTL_HOME": str(tmp_path / "elsewhere")})
    assert "embedded simulator" in other_home.stderr
    explicit = ftctl("list", env={"FTCTL_BACKEND": "sim", "FTCTL_HOME": str(tmp_path / "third")})
    assert explicit.stderr == ""
