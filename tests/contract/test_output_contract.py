"""The output contract (docs/contract.md, "Output"), on every command.

Every command runs as a real process with stdout to a pipe, as in a script: data on stdout and
nothing else; no colour, no `…`, no Rich table cut at 80 columns; `--json` strict JSON on one
line; errors on stderr, as JSON under `--json`. Then `--fields`, the colour switches and prompts.
"""

from __future__ import annotations

import json
import sqlite3
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from ftctl.output.fields import KINDS
from ftctl.output.terminal import color_enabled
from kit import MODEL, ROOT, answer_on_a_terminal

LONG_MODEL = "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"  # a catalogue model: > 80 columns with its id
BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", LONG_MODEL]
ANSI = "\x1b"
EXAMPLE = str(ROOT / "examples" / "data" / "train.jsonl")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def strict_json(text: str):
    def reject(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=reject)


def piped(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """ftctl as a script runs it: stdout and stderr to pipes, stdin an empty pipe (a prompt would fail)."""
    return subprocess.run([sys.executable, "-m", "ftctl", *args], capture_output=True, text=True, input="",
                          env={**os.environ, **(env or {})}, timeout=timeout)


@pytest.fixture
def jobs(ftctl, scenario_file, tmp_path):
    """A finished job whose history has a NaN, two jobs still pending (to cancel), two finished
    ones to delete, and a directory to download into; two local datasets and an invalid one (to
    upload), two uploaded files (to delete)."""
    nan = scenario_file([2.0, 1.5, "NaN", 1.0], steps_per_epoch=12)
    done = ftctl(*BASE, "--n-evals", "4", "--early-stopping", "--sim-scenario", nan, "-q")
    assert done.exit_code == 0, done.stderr
    slow = {"FTCTL_SIM_SPEED": "0.001"}
    live = [ftctl(*BASE, "-q", env=slow).stdout.strip() for _ in range(2)]
    ended = [ftctl(*BASE, "-q").stdout.strip() for _ in range(2)]
    local = []
    for i, assistant in enumerate((True, True, True, True, False)):
        path = tmp_path / f"data-{i}.jsonl"
        turns = [{"role": "user", "content": f"q{i}"}] + ([{"role": "assistant", "content": "a"}] if assistant else [])
        path.write_text(json.dumps({"messages": turns}) + "\n")
        local.append(str(path))
    uploaded = [ftctl("files", "upload", p, "-q").stdout.strip() for p in local[2:4]]
    return {"id": done.stdout.strip(), "live": live, "ended": ended, "scenario": str(nan), "dir": str(tmp_path),
            "local": local, "uploaded": uploaded}


def _cases(jobs: dict) -> dict[str, tuple[list[str], list[str], list[str], int]]:
    """command -> (human argv, --json argv, failing argv, its exit code)."""
    job, live, ended, where = jobs["id"], jobs["live"], jobs.get("ended", ["", ""]), jobs.get("dir", "")
    local, uploaded = jobs.get("local", [""] * 5), jobs.get("uploaded", ["", ""])
    create = [*BASE, "--n-evals", "4", "--sim-scenario", jobs["scenario"]]
    return {
        "create": (create, [*create, "--json"], [*BASE, "--n-evals", "-1"], 2),
        "retrieve": (["retrieve", job], ["retrieve", job, "--json"], ["retrieve", "ft-nope"], 6),
        "list": (["list"], ["list", "--json"], ["list", "--limit", "0"], 2),
        "cancel": (["cancel", live[0], "--yes"], ["cancel", live[1], "--yes", "--json"],
                   ["cancel", "ft-nope", "--yes"], 6),
        "events": (["events", job], ["events", job, "--json"], ["events", "ft-nope"], 6),
        "checkpoints": (["checkpoints", job], ["checkpoints", job, "--json"], ["checkpoints", "ft-nope"], 6),
        "metrics": (["metrics", job], ["metrics", job, "--json"], ["metrics", "ft-nope"], 6),
        "explain": (["explain", job], ["explain", job, "--json"], ["explain", "ft-nope"], 6),
        "wait": (["wait", job], ["wait", job, "--json"], ["wait", "ft-nope"], 6),
        "download": (["download", job, "-o", f"{where}/a.tar.zst"],
                     ["download", job, "-o", f"{where}/b.tar.zst", "--json"], ["download", "ft-nope"], 6),
        "delete": (["delete", ended[0], "--yes"], ["delete", ended[1], "--yes", "--json"],
                   ["delete", "ft-nope", "--yes"], 6),
        "report": (["report", job], ["report", job, "--json"], ["report", "ft-nope"], 6),
        "compare": (["compare", job, job], ["compare", job, job, "--json"], ["compare", job, "ft-nope"], 6),
        "completion": (["completion", "bash"], ["completion", "bash", "--json"], ["completion", "tcsh"], 2),
        "files check": (["files", "check", EXAMPLE], ["files", "check", EXAMPLE, "--json"],
                        ["files", "check", EXAMPLE + ".missing"], 2),
        "files upload": (["files", "upload", local[0]], ["files", "upload", local[1], "--json"],
                         ["files", "upload", local[4]], 2),
        "files list": (["files", "list"], ["files", "list", "--json"], ["files", "list", "--color", "sometimes"], 2),
        "files retrieve": (["files", "retrieve", "file-train"], ["files", "retrieve", "file-val", "--json"],
                           ["files", "retrieve", "file-nope"], 6),
        "files delete": (["files", "delete", uploaded[0], "--yes"], ["files", "delete", uploaded[1], "--yes", "--json"],
                         ["files", "delete", "file-nope", "--yes"], 6),
        "files content": (["files", "content", "file-train"], ["files", "content", "file-val", "--json"],
                          ["files", "content", "file-nope"], 6),
    }


LONG_RUNNING = {"sim serve"}  # covered by test_a_server_prints_its_url_and_nothing_else


def _commands() -> set[str]:
    """Every command, as typed: ``retrieve``, ``sim serve``, ..."""
    import typer

    from ftctl.app import app

    def walk(group, prefix: str) -> set[str]:
        names = set()
        for name, cmd in group.commands.items():
            sub = getattr(cmd, "commands", None)
            names |= walk(cmd, f"{prefix}{name} ") if sub is not None else {prefix + name}
        return names

    return walk(typer.main.get_command(app), "")


def test_every_command_has_a_contract_case(jobs):
    missing = _commands() - set(_cases(jobs)) - LONG_RUNNING
    assert not missing, f"add {sorted(missing)} to _cases() so the output contract covers them"


@pytest.mark.parametrize("command", sorted(_cases({"id": "", "live": ["", ""], "ended": ["", ""], "scenario": "",
                                                  "dir": ""})))
def test_piped_output_is_plain_complete_and_strict(jobs, command):
    human, as_json, failing, code = _cases(jobs)[command]
    runs = [human, as_json, failing, [*failing, "--json"]]
    with ThreadPoolExecutor(len(runs)) as pool:
        plain, js, err, err_js = pool.map(lambda argv: piped(*argv), runs)
    for run in (plain, js, err, err_js):
        assert ANSI not in run.stdout + run.stderr, run.args
        assert "…" not in run.stdout + run.stderr, run.args
        assert "Traceback" not in run.stderr, run.stderr

    # human output to a pipe: data, untruncated, tab-separated where it is rows
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip(), "no data on stdout"
    if command in ("create", "retrieve", "cancel", "list"):
        assert LONG_MODEL in plain.stdout and re.search(r"\bft-[0-9a-f-]{36}\b", plain.stdout)
    if command in ("list", "events", "checkpoints", "retrieve"):
        assert all("\t" in line for line in plain.stdout.splitlines()), plain.stdout
        stamps = re.findall(r"\d{4}-\d\d-\d\dT[^\t\n]*", plain.stdout)
        assert stamps and all(ISO_UTC.fullmatch(s) for s in stamps), stamps
    if command == "list":
        assert {line.split("\t")[0] for line in plain.stdout.splitlines()} >= {jobs["id"], *jobs["live"]}

    # --json: strict JSON, one line, on stdout only
    assert js.returncode == 0, js.stderr
    assert js.stdout.count("\n") == 1, "JSON to a pipe is one line"
    strict_json(js.stdout)

    # errors: nothing on stdout; one line on stderr (a JSON object under --json)
    for run in (err, err_js):
        assert run.returncode == code, run.stderr
        assert run.stdout == ""
    errors = [line for line in err.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors == err.stderr.splitlines()[-1:], err.stderr
    body = strict_json(err_js.stderr.splitlines()[-1])
    assert set(body) == {"error"} and body["error"]["exit_code"] == code
    assert body["error"]["message"] and body["error"]["code"]


@pytest.mark.parametrize("as_json", [False, True])
def test_a_server_prints_its_url_and_nothing_else(as_json):
    argv = [sys.executable, "-m", "ftctl", "sim", "serve", "--port", "0", *(["--json"] if as_json else [])]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stdout.readline()  # the URL is on stdout before the server runs
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    stdout = first + out
    assert ANSI not in stdout + err and "…" not in stdout + err and "Traceback" not in err
    assert stdout.count("\n") == 1, stdout
    url = strict_json(stdout)["url"] if as_json else stdout.strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), stdout
    if as_json:
        assert set(strict_json(stdout)) == set(KINDS["server"])
    failing = piped("sim", "serve", "--port", "70000", *(["--json"] if as_json else []))
    assert failing.returncode == 2 and failing.stdout == ""
    last = failing.stderr.splitlines()[-1]
    assert strict_json(last)["error"]["exit_code"] == 2 if as_json else last.startswith("Error: ")


def test_a_server_checks_fields_before_it_listens():
    result = piped("sim", "serve", "--port", "0", "--fields", "adress")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown field 'adress' for --fields; valid fields: faults, home, speed, url" in result.stderr


def test_non_finite_numbers_are_strings_in_json(ftctl, jobs):
    data = ftctl("metrics", jobs["id"], "--json").json()
    assert [e["eval_loss"] for e in data["evaluations"]][:3] == [2.0, 1.5, "NaN"]
    raw = ftctl("metrics", jobs["id"], "--raw").json()
    assert "NaN" in [row.get("eval/loss") for row in raw["metrics"]]


def test_json_on_a_terminal_is_indented_and_still_strict(ftctl, jobs):
    result = ftctl("metrics", jobs["id"], "--json", env={"FTCTL_FORCE_TTY": "1", "NO_COLOR": "1"})
    assert result.stdout.startswith("{\n  ") and ANSI not in result.stdout
    strict_json(result.stdout)


# -- --fields ---------------------------------------------------------------------------------------


def test_fields_select_in_the_order_asked_and_imply_json(ftctl, jobs):
    one = ftctl("retrieve", jobs["id"], "--fields", "status,id")
    assert one.exit_code == 0
    assert list(one.json().items()) == [("status", "completed"), ("id", jobs["id"])]
    many = ftctl("list", "--fields", "id")
    assert {row["id"] for row in many.json()} == {jobs["id"], *jobs["live"], *jobs["ended"]}
    assert all(list(row) == ["id"] for row in many.json())
    steps = ftctl("metrics", jobs["id"], "--fields", "early_stopping").json()
    assert list(steps) == ["early_stopping"] and steps["early_stopping"]["fired"] is True


@pytest.mark.parametrize("argv,kind", [
    (["retrieve", "{id}"], "job"), (["list"], "job"), (["events", "{id}"], "event"),
    (["checkpoints", "{id}"], "checkpoint"), (["metrics", "{id}"], "metrics"),
])
def test_unknown_field_is_exit_2_listing_the_valid_ones(ftctl, jobs, argv, kind):
    argv = [a.format(id=jobs["id"]) for a in argv]
    result = ftctl(*argv, "--fields", f"{KINDS[kind][0]},bogus")
    assert result.exit_code == 2 and result.stdout == ""
    error = json.loads(result.stderr.splitlines()[-1])["error"]  # --fields implies --json errors
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("unknown field 'bogus' for --fields; valid fields: ")
    listed = error["message"].split("valid fields: ")[1].split(", ")
    assert set(listed) >= set(KINDS[kind])


def test_a_field_typo_on_create_or_cancel_acts_on_nothing(ftctl, jobs):
    before = {j["id"] for j in ftctl("list", "--json").json()}
    bad = ftctl(*BASE, "--fields", "idd")
    assert bad.exit_code == 2
    assert {j["id"] for j in ftctl("list", "--json").json()} == before
    live = jobs["live"][0]
    assert ftctl("cancel", live, "--yes", "--fields", "stauts").exit_code == 2
    assert ftctl("retrieve", live, "--json").json()["status"] != "cancelled"
    assert ftctl("list", "--fields", "").exit_code == 2


def test_field_names_match_the_models():
    from ftctl.models import Checkpoint, Event, Job

    from ftctl.promotion import ADDED

    for kind, model, added in (("job", Job, ()), ("event", Event, ()), ("checkpoint", Checkpoint, ADDED)):
        assert set(KINDS[kind]) == {f.alias or name for name, f in model.model_fields.items()} | set(added), kind


def test_field_names_match_what_the_commands_print(ftctl, jobs):
    assert set(ftctl("retrieve", jobs["id"], "--json").json()) <= set(KINDS["job"])
    assert {k for e in ftctl("events", jobs["id"], "--json").json() for k in e} <= set(KINDS["event"])
    assert set(ftctl("metrics", jobs["id"], "--json").json()) == set(KINDS["metrics"])
    assert set(ftctl("metrics", jobs["id"], "--raw").json()) == set(KINDS["metrics_response"])
    assert set(ftctl("completion", "fish", "--json").json()) == set(KINDS["completion"])
    full = ftctl("create", "-t", "f", "-v", "v", "-m", MODEL, "--n-evals", "5", "--early-stopping",
                 "--patience", "2", "--min-delta", "0.1", "--warmup-evals", "1", "--suffix", "s",
                 "--max-seq-length", "10", "--gradient-accumulation-steps", "2", "--random-seed", "1", "--lora",
                 "--wandb-project-name", "p", "--wandb-name", "n", "--wandb-entity", "e",
                 "--wandb-base-url", "https://wandb.example", "--dry-run").json()
    dpo = ftctl("create", "-t", "f", "--from-checkpoint", "ft-a", "--training-method", "dpo", "--dry-run",
                env={"WANDB_API_KEY": "k"}).json()
    assert set(full) | set(dpo) == set(KINDS["request"])


# -- colour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("flag,tty,env,expected", [
    ("auto", True, {}, True),
    ("auto", False, {}, False),
    ("always", False, {"NO_COLOR": "1"}, True),
    ("never", True, {"FORCE_COLOR": "1"}, False),
    ("auto", True, {"NO_COLOR": "1"}, False),
    ("auto", True, {"NO_COLOR": ""}, True),  # NO_COLOR counts only when non-empty
    ("auto", False, {"NO_COLOR": "1", "FORCE_COLOR": "1"}, False),
    ("auto", False, {"FORCE_COLOR": "1"}, True),
    ("auto", False, {"FORCE_COLOR": "0"}, False),
    ("auto", False, {"CLICOLOR_FORCE": "1"}, True),
    ("auto", False, {"CLICOLOR_FORCE": "0"}, False),
    ("auto", False, {"CLICOLOR_FORCE": ""}, False),
    ("auto", True, {"TERM": "dumb"}, False),
    ("auto", True, {"CLICOLOR": "0"}, False),
    ("auto", True, {"CLICOLOR": "1"}, True),
    ("auto", True, {"TERM": "dumb", "CLICOLOR_FORCE": "1"}, True),
])
def test_colour_rules(flag, tty, env, expected):
    assert color_enabled(flag, tty, env) is expected


@pytest.mark.parametrize("args,env,coloured", [
    ([], {}, False),
    (["--color", "always"], {}, True),
    ([], {"FORCE_COLOR": "1"}, True),
    ([], {"CLICOLOR_FORCE": "1"}, True),
    ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
    (["--color", "never"], {"CLICOLOR_FORCE": "1"}, False),
])
def test_colour_switches_reach_stderr_of_a_real_process(args, env, coloured):
    result = piped("retrieve", "ft-nope", *args, env=env)
    assert result.returncode == 6
    assert ("\x1b[31;1mError: \x1b[0m" in result.stderr) is coloured, result.stderr
    assert ANSI not in result.stdout


@pytest.mark.parametrize("env,coloured", [
    ({}, True), ({"NO_COLOR": "1"}, False), ({"TERM": "dumb"}, False), ({"CLICOLOR": "0"}, False),
])
def test_colour_switches_on_a_terminal_layout(ftctl, jobs, env, coloured):
    result = ftctl("list", env={"FTCTL_FORCE_TTY": "200", "TERM": "xterm", **env})
    assert result.exit_code == 0
    assert (ANSI in result.stdout) is coloured
    assert jobs["id"] in result.stdout  # the full id, on a wide terminal


@pytest.mark.parametrize("width", [50, 80, 200])
def test_terminal_tables_fold_rather_than_cut_and_show_api_text_as_is(ftctl, ftctl_home, width):
    model = "org/model[bold]x[/]"  # Rich markup in the API's data stays text
    job_id = ftctl("create", "-t", "file-train", "-m", MODEL, "-q").stdout.strip()
    # no catalogue model has markup in its name: put it in the stored job, as if the API sent it
    db = sqlite3.connect(ftctl_home / "simulator.db")
    db.execute("UPDATE jobs SET body = json_set(body, '$.model', ?), final_job = json_set(final_job, '$.model', ?) "
               "WHERE id = ?", (model, model, job_id))
    db.commit()
    db.close()
    result = ftctl("list", env={"FTCTL_FORCE_TTY": str(width), "NO_COLOR": "1"})
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout and ANSI not in result.stdout
    assert any(job_id in line for line in lines)  # whole, on one line (tests/contract/test_first_hour.py: all widths)
    if width != 80:  # at 80 the MODEL column is the first dropped; at 50 each job is a block
        assert model in result.stdout


def test_color_flag_rejects_other_values(ftctl):
    result = ftctl("list", "--color", "sometimes")
    assert result.exit_code == 2
    assert "--color must be auto, always or never (got 'sometimes')" in result.stderr


# -- prompts --------------------------------------------------------------------------------------


def test_no_prompt_off_a_terminal(jobs):
    live = jobs["live"][0]
    for env in ({}, {"FTCTL_FORCE_TTY": "1"}):  # stdout "a terminal" but stdin a pipe: still no prompt
        result = piped("cancel", live, env=env)
        assert result.returncode == 2, result.stderr
        assert "needs --yes" in result.stderr and "?" not in result.stdout
    assert json.loads(piped("retrieve", live, "--json").stdout)["status"] != "cancelled"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_cancel_asks_on_a_terminal_and_no_keeps_the_job(jobs):
    live = jobs["live"][0]
    answered, code, text = answer_on_a_terminal(["cancel", live], b"Cancel ", b"n")
    assert answered, text
    assert code == 0, text
    assert "Not cancelled; the job keeps running." in text
    assert json.loads(piped("retrieve", live, "--json").stdout)["status"] != "cancelled"
