"""What-if: a recorded history replayed under other settings, against what really happened; the
sweep; and the same answers offline from a saved history (--from-file), with no backend opened."""

from __future__ import annotations

import json

import pytest

from ftctl import early_stopping as es
from ftctl.analysis import analyse
from kit import BASE, WORKED

# Best at evaluation 5 (step 60), then two worse ones: patience 2 halts at step 84 (evaluation 7).
LATE = [2.0, 1.5, 1.2, 0.9, 0.41, 0.43, 0.44, 0.39, 0.38, 0.37]


def flat(text: str) -> str:
    return " ".join(text.split())


def job(ftctl, scenario_file, losses, *flags) -> str:
    result = ftctl(*BASE, "--n-evals", "10", "--sim-scenario", scenario_file(losses, steps_per_epoch=120), *flags,
                   "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_a_run_without_early_stopping(ftctl, scenario_file):
    job_id = job(ftctl, scenario_file, LATE)
    out = flat(ftctl("explain", job_id, "--patience", "2").stdout)
    assert ("With patience 2, min_delta 0.0, warmup 1 this run would have stopped at step 84 (evaluation 7), "
            "promoting step 60 (eval_loss 0.41), saving 36 of 120 steps.") in out
    out = flat(ftctl("explain", job_id, "--patience", "4").stdout)
    assert ("With patience 4, min_delta 0.0, warmup 1 this run would not have stopped: it would have run to the "
            "last step (120); best eval_loss 0.37 at step 120, the same 120 steps as the actual run.") in out


def test_an_early_stopped_run_under_other_settings(ftctl, scenario_file):
    job_id = job(ftctl, scenario_file, WORKED, "--early-stopping")
    shorter = flat(ftctl("explain", job_id, "--patience", "1").stdout)
    assert ("With patience 1, min_delta 0.0, warmup 1 this run would have stopped at step 60 (evaluation 5), "
            "promoting step 48 (eval_loss 0.4213), 12 steps fewer than the actual run (72 of 120).") in shorter
    # a longer patience: the history ends where the job stopped, so the answer is "later", not a number
    longer = flat(ftctl("explain", job_id, "--patience", "3").stdout)
    assert ("With patience 3, min_delta 0.0, warmup 1 this run would not have stopped by step 72, where the "
            "recorded history ends; it would have run longer than the actual run, by how much the history cannot "
            "tell.") in longer
    # min_delta changes which step is promoted: neither 1.5 nor 1.2 is more than 0.8 below 2.0
    delta = flat(ftctl("explain", job_id, "--min-delta", "0.8").stdout)
    assert ("With patience 2, min_delta 0.8, warmup 1 this run would have stopped at step 36 (evaluation 3), "
            "promoting step 12 (eval_loss 2.0), 36 steps fewer than the actual run (72 of 120).") in delta
    # and warmup that swallows the streak runs past the history's end
    warm = flat(ftctl("explain", job_id, "--warmup-evals", "6").stdout)
    assert "would not have stopped by step 72" in warm


def test_costing_more_than_the_actual_run(ftctl, scenario_file):
    job_id = job(ftctl, scenario_file, LATE, "--early-stopping", "--patience", "1")  # stopped at step 72
    out = flat(ftctl("explain", job_id, "--patience", "2").stdout)
    assert "would not have stopped by step 72" in out  # the history ends at 72: 84 cannot be known
    full = job(ftctl, scenario_file, LATE)  # no early stopping: the whole history is known
    out = flat(ftctl("explain", full, "--patience", "1").stdout)
    assert "would have stopped at step 72 (evaluation 6), promoting step 60 (eval_loss 0.41), saving 48 of 120" in out


def test_sweep_table_and_json(ftctl, scenario_file):
    job_id = job(ftctl, scenario_file, LATE)
    table = ftctl("explain", job_id, "--patience", "1,2,3,4")
    rows = [line.split("\t") for line in table.stdout.splitlines() if "\t" in line]
    assert rows == [
        ["1", "0.0", "1", "72", "60", "0.41", "72", "saves 48"],
        ["2", "0.0", "1", "84", "60", "0.41", "84", "saves 36"],
        ["3", "0.0", "1", "no halt", "120", "0.37", "120", "same"],
        ["4", "0.0", "1", "no halt", "120", "0.37", "120", "same"],
    ]
    # min_delta 0.35: 1.5 counts (0.5 below 2.0), 1.2 does not (0.3), 0.9 and 0.41 do again
    data = ftctl("explain", job_id, "--patience", "1,2", "--min-delta", "0,0.35", "--json").json()
    assert [(w["patience"], w["min_delta"], w["halt_step"], w["best_step"], w["steps_saved"])
            for w in data["what_if"]] == [(1, 0.0, 72, 60, 48), (1, 0.35, 36, 24, 84), (2, 0.0, 84, 60, 36),
                                          (2, 0.35, 84, 60, 36)]
    assert data["early_stopping"]["enabled"] is False
    tty = ftctl("explain", job_id, "--patience", "1,2", tty=100)
    assert "What if" in tty.stdout and "HALT STEP" in tty.stdout


@pytest.mark.parametrize("args, message", [
    (["--patience", "0"], "--patience must be >= 1 (got 0)"),
    (["--patience", "two"], "--patience takes integers separated by commas (got 'two')"),
    (["--min-delta", "-0.1"], "--min-delta must be >= 0 (got -0.1)"),
    (["--min-delta", "nan"], "--min-delta must be >= 0 (got nan)"),
    (["--warmup-evals", "-1"], "--warmup-evals must be >= 0 (got -1)"),
    (["--patience", ",".join(str(p) for p in range(1, 30)), "--min-delta", ",".join(["0"] * 10)],
     "a sweep is limited to 200 combinations of settings (got 290)"),
])
def test_bad_what_if_settings_exit_2_before_anything_is_fetched(ftctl, args, message):
    result = ftctl("explain", "ft-unknown-job", *args)  # exit 2, not 6: nothing was asked of the backend
    assert result.exit_code == 2 and message in result.stderr


def test_what_if_in_the_core_matches_the_rule():
    """The replay is the rule's fold over the history, nothing else."""
    rows = [{"train/global_step": 12 * (i + 1), "eval/loss": v} for i, v in enumerate(LATE)]
    a = analyse({"status": "completed", "total_steps": 120, "n_evals": 10, "early_stopped": False,
                 "steps_completed": 120}, rows, sent={"early_stopping_enabled": False})
    for p in (1, 2, 3):
        for d in (0.0, 0.02, 0.3):
            settings = es.Settings(p, d, 1)
            w = a.what_if(settings)
            state = es.replay(LATE, settings)
            assert w.fired == state.stopped
            assert w.halt_step == (12 * state.halt_i if state.stopped else None)
            assert w.best_step == 12 * state.best_i
            assert w.steps_saved == (120 - 12 * state.halt_i if state.stopped else 0)


# --- offline: a saved history, no network --------------------------------------------------------

OFFLINE = {"TOGETHER_API_KEY": "not-a-real-key", "TOGETHER_BASE_URL": "http://127.0.0.1:9", "FTCTL_BACKEND": "together"}


def test_saved_metrics_json_explains_offline(ftctl, scenario_file, tmp_path):
    job_id = job(ftctl, scenario_file, WORKED, "--early-stopping")
    saved = tmp_path / "run.json"
    saved.write_text(ftctl("metrics", job_id, "--json").stdout)
    online = ftctl("explain", job_id).stdout
    # the real API is configured but unreachable: --from-file must not touch it
    offline = ftctl("explain", "--from-file", saved, env=OFFLINE)
    assert offline.exit_code == 0, offline.stderr
    assert offline.stdout == online  # the same words, settings and cross-check
    metrics = ftctl("metrics", "--from-file", saved, env=OFFLINE)
    assert "★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2" in metrics.stdout
    assert json.loads(ftctl("metrics", "--from-file", saved, "--json", env=OFFLINE).stdout)["early_stopping"] == \
        ftctl("metrics", job_id, "--json").json()["early_stopping"]
    what_if = ftctl("explain", "--from-file", saved, "--patience", "1", env=OFFLINE)
    assert "would have stopped at step 60 (evaluation 5)" in flat(what_if.stdout)


def test_raw_api_response_explains_offline_with_defaults_assumed(ftctl, scenario_file, tmp_path):
    job_id = job(ftctl, scenario_file, LATE)
    raw = tmp_path / "raw.json"
    raw.write_text(ftctl("metrics", job_id, "--raw").stdout)
    out = ftctl("explain", "--from-file", raw, env=OFFLINE)
    assert out.exit_code == 0, out.stderr
    text = flat(out.stdout)
    # nothing says whether early stopping ran: the default rule is replayed, and the text says so
    assert "Early stopping fired at step 84 (evaluation 7): eval_loss did not improve for 2" in text
    assert "(the server's defaults, assumed:" in text
    train = ftctl("metrics", "--from-file", raw, "--train", "--no-table", "--no-explain", env=OFFLINE)
    assert "- train loss" in train.stdout


def test_from_stdin(ftctl, ftctl_proc, scenario_file):
    raw = ftctl("metrics", job(ftctl, scenario_file, LATE), "--raw").stdout
    piped = ftctl_proc("explain", "--from-file", "-", "--json", input=raw, env=OFFLINE)
    assert piped.exit_code == 0, piped.stderr
    assert json.loads(piped.stdout)["early_stopping"]["halt_step"] == 84


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ('{"jobs": []}', "is not a saved history; expected the output of `ftctl metrics ID --json`"),
    ('{"metrics": [{"train/global_step": 1, "train/loss": 2.0}]}', "has no evaluation rows"),
])
def test_bad_saved_files_exit_2(ftctl, tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = ftctl("explain", "--from-file", path, env=OFFLINE)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_from_file_and_a_job_id_are_one_or_the_other(ftctl, tmp_path):
    assert "give a job id, or --from-file FILE" in ftctl("explain").stderr
    both = ftctl("metrics", "ft-abc", "--from-file", tmp_path / "x.json")
    assert both.exit_code == 2 and "not both" in both.stderr
    missing = ftctl("metrics", "--from-file", tmp_path / "nope.json")
    assert missing.exit_code == 2 and "cannot read --from-file" in missing.stderr
    filtered = ftctl("metrics", "--from-file", tmp_path / "x.json", "--resolution", "5")
    assert filtered.exit_code == 2 and "do not apply to --from-file" in filtered.stderr
