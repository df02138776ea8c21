"""The explanation (docs/early-stopping.md §5) for each outcome, pinned word for word, through the CLI
on the simulator; the same facts in JSON; and the cross-check against the server's verdict."""

from __future__ import annotations

import json
import math

import pytest

from ftctl.analysis import analyse
from ftctl.output.explanation import explain, paragraphs
from kit import BASE, WORKED

NAN = "NaN"


def flat(text: str) -> str:
    """Wrapping aside: the words and numbers as a user reads them."""
    return " ".join(text.split())


def job_with(ftctl, scenario_file, losses, *, p=2, d=0.0, w=1, enabled=True, extra=()) -> str:
    """A job whose evaluations are every 12 steps (K = 12, as in docs/early-stopping.md §7)."""
    args = [*BASE, "--n-evals", str(len(losses)), "--sim-scenario",
            scenario_file(losses, steps_per_epoch=12 * len(losses)), *extra, "-q"]
    if enabled:
        args += ["--early-stopping", "--patience", str(p), "--min-delta", str(d), "--warmup-evals", str(w)]
    result = ftctl(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


CASE_1 = """\
Early stopping fired at step 72 (evaluation 6 of 10): eval_loss did not improve for 2
consecutive evaluations (patience 2).
  Best: eval_loss 1.0 at step 48 (evaluation 4). An evaluation counts as an improvement only
  if it is more than min_delta (0.0) below the best, i.e. below 1.0.
    step 60  eval_loss 1.05  not below 1.0   (1 of 2)
    step 72  eval_loss 1.1   not below 1.0   (2 of 2) -> halt
  The checkpoint from step 48 was promoted as the final model. Steps 73-120 (48 of 120)
  were not run and are refunded."""

CASE_12 = """\
Early stopping fired at step 36 (evaluation 3 of 5): eval_loss was NaN, which is not a finite
number; a non-finite eval_loss halts the run immediately, regardless of patience and warmup.
  Best finite eval_loss before it: 0.8 at step 24 (evaluation 2); that checkpoint was promoted.
  Steps 37-60 (24 of 60) were not run and are refunded."""

CASE_15 = """\
Early stopping fired at step 12 (evaluation 1 of 4): eval_loss was NaN, which is not a finite
number. No finite eval_loss was recorded before it, so there is no best checkpoint:
early_stopping_best_metric is null and early_stopping_best_step is the halt step (12)."""

CASE_30 = """\
Early stopping was enabled (patience 2, min_delta 0.0, warmup 1) but did not fire: all 4
evaluations ran. The longest run of non-improving evaluations after warmup was 1 of 2.
  Best eval_loss 0.8 at step 36 (evaluation 3). The job was not early-stopped, so its final
  model is the checkpoint from the last step (48), not the best one."""


@pytest.mark.parametrize("losses, template", [
    ([2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9, 0.8, 0.7, 0.6], CASE_1),
    ([1.0, 0.8, NAN, 0.5, 0.4], CASE_12),
    ([NAN, 1.0, 0.9, 0.8], CASE_15),
    ([1.0, 0.9, 0.8, 0.85], CASE_30),
], ids=["case1-patience", "case12-non-finite-with-best", "case15-non-finite-no-best", "case30-not-fired"])
def test_the_spec_templates_word_for_word(ftctl, scenario_file, losses, template):
    job_id = job_with(ftctl, scenario_file, losses)
    out = ftctl("explain", job_id)
    assert out.exit_code == 0, out.stderr
    assert flat(template) in flat(out.stdout)
    assert "Settings: patience 2, min_delta 0.0, warmup 1 (as sent at create, recorded by ftctl)." in flat(out.stdout)
    assert "✓ the replay of the history agrees with the server's" in out.stdout
    assert "Warning" not in out.stderr


def test_the_streak_trail_is_aligned_one_evaluation_per_line(ftctl, scenario_file):
    job_id = job_with(ftctl, scenario_file, [2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9, 0.8, 0.7, 0.6])
    lines = ftctl("explain", job_id).stdout.splitlines()
    assert "    step 60  eval_loss 1.05  not below 1.0   (1 of 2)" in lines
    assert "    step 72  eval_loss 1.1   not below 1.0   (2 of 2) -> halt" in lines



WORKED_TEXT = """\
Early stopping fired at step 72 (evaluation 6 of 10): eval_loss did not improve for 2 consecutive
evaluations (patience 2).
  Best: eval_loss 0.4213 at step 48 (evaluation 4). An evaluation counts as an improvement only if
  it is more than min_delta (0.0) below the best, i.e. below 0.4213.
    step 60  eval_loss 0.45  not below 0.4213   (1 of 2)
    step 72  eval_loss 0.47  not below 0.4213   (2 of 2) -> halt
  The checkpoint from step 48 was promoted as the final model. Steps 73-120 (48 of 120) were not run
  and are refunded.
Settings: patience 2, min_delta 0.0, warmup 1 (as sent at create, recorded by ftctl).
✓ the replay of the history agrees with the server's early_stopped, best step and best eval_loss.
"""


def test_worked_example_metrics_output_pinned(ftctl, scenario_file):
    """The seed's worked example through `ftctl metrics`, off a terminal: chart, table, explanation."""
    result = ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                   scenario_file(WORKED, steps_per_epoch=24), "-q")
    job_id = result.stdout.strip()
    out = ftctl("metrics", job_id).stdout
    assert out.endswith(WORKED_TEXT)  # exact, wrapped at the plain width (100)
    assert ("1\t12\t2\t\twarmup, best\t\n2\t24\t1.5\t-0.5\timproved\t0/2\n3\t36\t1.2\t-0.3\timproved\t0/2\n"
            "4\t48\t0.4213\t-0.7787\timproved\t0/2\n5\t60\t0.45\t+0.0287\tno\t1/2\n6\t72\t0.47\t+0.0487\tno\t2/2\n") in out
    # the numbers of the explanation are those of retrieve --json
    job = ftctl("retrieve", job_id, "--json").json()
    assert (job["steps_completed"], job["early_stopping_best_step"], job["early_stopping_best_metric"]) == (72, 48, 0.4213)
    assert f"best {job['early_stopping_best_metric']} @ step {job['early_stopping_best_step']}" in out
    assert f"Steps {job['steps_completed'] + 1}-{job['total_steps']}" in out


@pytest.mark.parametrize("preset", ["plateau", "improving", "nan", "diverging", "noisy"])
def test_every_preset_shows_markers_and_numbers_that_match_retrieve(ftctl, preset):
    job_id = ftctl(*BASE, "--n-epochs", "3", "--n-evals", "20", "--early-stopping", "--sim-scenario", preset,
                   "-q").stdout.strip()
    job = ftctl("retrieve", job_id, "--json").json()
    out = ftctl("metrics", job_id).stdout
    best, best_step = job["early_stopping_best_metric"], job["early_stopping_best_step"]
    legend = next(line.strip() for line in out.splitlines() if "patience 2" in line and "@ step" in line)
    if best is not None:
        assert f"★ best {best!r} @ step {best_step}" in legend
        assert f"{best!r} at step {best_step} (evaluation " in flat(out)
    if job["early_stopped"]:
        assert f"✖ halted @ step {job['steps_completed']}" in legend
        assert f"Early stopping fired at step {job['steps_completed']}" in flat(out)
    else:
        assert "halted" not in legend
        assert f"final model is the checkpoint from the last step ({job['total_steps']})" in flat(out)
    # the markers sit at the steps they name: map the marker's column back to a step
    lines = out.splitlines()
    axis = next(i for i, line in enumerate(lines) if line.lstrip().startswith("└"))
    left = lines[axis].index("└") + 1
    width = len(lines[axis]) - left
    per_column = job["total_steps"] / (width - 1)

    def column_of(glyph):
        return [line.index(glyph) - left for line in lines[:axis] if glyph in line]

    if best is not None:
        (c,) = column_of("★")
        assert abs(c * per_column - best_step) <= per_column
    if job["early_stopped"]:
        (c,) = column_of("✖")
        assert abs(c * per_column - job["steps_completed"]) <= per_column / 2 + 1e-9


def test_warmup_best_line(ftctl, scenario_file):  # case 19
    out = flat(ftctl("explain", job_with(ftctl, scenario_file, [1.0, 1.1, 1.2, 0.9, 0.8])).stdout)
    assert ("Evaluation 1 is a warmup evaluation: it set the best value but did not count toward patience."
            in out)
    assert "Early stopping fired at step 36 (evaluation 3 of 5)" in out


def test_lower_but_not_by_more_than_min_delta_line(ftctl, scenario_file):  # case 11
    out = flat(ftctl("explain", job_with(ftctl, scenario_file, [1.0, 0.5, 0.45, 0.48, 0.3], d=0.1)).stdout)
    assert ("Evaluation 3 (0.45) was lower than the best but not by more than min_delta (0.1), so it did "
            "not count and was not promoted.") in out
    assert "i.e. below 0.4." in out


def test_exactly_min_delta_line(ftctl, scenario_file):  # case 8
    out = flat(ftctl("explain", job_with(ftctl, scenario_file, [1.0, 0.75, 0.8, 0.9, 0.95], d=0.25)).stdout)
    assert ("Evaluation 2 is exactly min_delta (0.25) below the best (1.0); a decrease equal to min_delta "
            "does not count.") in out


def test_patience_out_at_the_final_evaluation_refunds_nothing(ftctl, scenario_file):  # case 24
    out = flat(ftctl("explain", job_with(ftctl, scenario_file, [1.0, 0.9, 0.8, 0.85, 0.86])).stdout)
    assert ("The checkpoint from step 36 was promoted as the final model. Patience ran out at the last "
            "evaluation, so no steps were left to refund.") in out


def test_not_enabled_says_so_and_what_the_default_rule_would_have_done(ftctl, scenario_file):
    job_id = job_with(ftctl, scenario_file, WORKED, enabled=False)
    out = flat(ftctl("explain", job_id).stdout)
    assert ("Early stopping was not enabled for this job: all 10 evaluations ran and the final model is the "
            "checkpoint from the last step (120).") in out
    assert ("With the default rule (patience 2, min_delta 0.0, warmup 1) this run would have stopped at step 72 "
            "(evaluation 6), promoting step 48 (eval_loss 0.4213), saving 48 of 120 steps.") in out
    es = ftctl("explain", job_id, "--json").json()["early_stopping"]
    assert es["enabled"] is False and es["fired"] is False
    assert (es["default_rule"]["halt_step"], es["default_rule"]["best_step"], es["default_rule"]["steps_saved"]) == (
        72, 48, 48)
    # the chart says early stopping was off and where the default rule would have halted
    assert "early stopping off (the default rule would have halted @ step 72)" in ftctl("metrics", job_id).stdout


def test_json_is_the_object_the_text_is_rendered_from(ftctl, scenario_file):
    job_id = job_with(ftctl, scenario_file, [2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9, 0.8, 0.7, 0.6])
    data = ftctl("explain", job_id, "--json").json()
    es = data["early_stopping"]
    assert data["job_id"] == job_id
    assert {k: es[k] for k in ("fired", "reason", "halt_step", "halt_eval", "best_step", "best_eval",
                               "best_eval_loss", "non_improving_steps", "patience", "min_delta", "warmup_evals",
                               "steps_refunded", "total_steps")} == {
        "fired": True, "reason": "patience_exhausted", "halt_step": 72, "halt_eval": 6, "best_step": 48,
        "best_eval": 4, "best_eval_loss": 1.0, "non_improving_steps": [60, 72], "patience": 2, "min_delta": 0.0,
        "warmup_evals": 1, "steps_refunded": 48, "total_steps": 120}
    assert es["cross_check"]["applicable"] is True and es["cross_check"]["agrees"] is True
    assert ftctl("metrics", job_id, "--json").json()["early_stopping"] == es


def test_a_job_ftctl_did_not_create_says_the_defaults_are_assumed(ftctl, scenario_file, ftctl_home):
    job_id = job_with(ftctl, scenario_file, [1.0, 1.1, 1.2, 0.9, 0.8])
    (ftctl_home / "jobs.json").unlink()  # as if another tool had created it
    out = flat(ftctl("explain", job_id).stdout)
    assert "Settings: patience 2, min_delta 0.0, warmup 1 (the server's defaults, assumed:" in out
    assert ftctl("explain", job_id, "--json").json()["early_stopping"]["settings_source"] == "assumed_defaults"


def test_running_job_says_what_the_next_evaluation_must_beat(ftctl, scenario_file, sim_time):
    env = {"FTCTL_SIM_SPEED": "10"}
    job_id = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario",
                   scenario_file(WORKED, steps_per_epoch=120), "-q", env=env).stdout.strip()
    sim_time.advance((6 + 60) / 10)  # pending, queued and download, then 60 steps: 5 evaluations
    out = flat(ftctl("explain", job_id, env=env).stdout)
    assert ("has not fired so far: 5 of 10 evaluations have run, and the current run of non-improving "
            "evaluations after warmup is 1 of 2.") in out
    assert "Best so far: eval_loss 0.4213 at step 48 (evaluation 4); the next evaluation must be below 0.4213" in out


# --- cross-check -------------------------------------------------------------------------------

def test_disagreeing_server_verdict_in_the_core():
    rows = [{"train/global_step": 12 * (i + 1), "eval/loss": v} for i, v in enumerate(WORKED[:6])]
    server = {"status": "completed", "total_steps": 120, "n_evals": 10, "early_stopped": True,
              "steps_completed": 72, "early_stopping_best_step": 60, "early_stopping_best_metric": 0.45}
    a = analyse(server, rows, sent={"early_stopping_enabled": True, "early_stopping_patience": 2})
    assert a.disagreements == ("best_step", "best_eval_loss")
    # the server's fields are shown as the truth
    assert (a.best_step, a.best_eval_loss, a.halt_step) == (60, 0.45, 72)
    lines = explain(a)
    warnings = [line.text for line in lines if line.kind == "warning"]
    assert warnings == [
        "the server and the replay disagree (best_step, best_eval_loss): the server says early stopping fired "
        "at step 72, best step 60 (eval_loss 0.45); replaying the history with patience 2, min_delta 0.0, "
        "warmup 1 gives early stopping fired at step 72, best step 48 (eval_loss 0.4213). Showing the "
        "server's answer."]
    assert "Best: eval_loss 0.45 at step 60 (evaluation 5)." in flat("\n".join(paragraphs(lines, 100)))


def test_disagreement_on_whether_it_fired_through_the_cli(ftctl, scenario_file, ftctl_home):
    """ftctl's record says patience 3; the server stopped at patience 2: one warning naming both."""
    job_id = job_with(ftctl, scenario_file, WORKED)
    state = json.loads((ftctl_home / "jobs.json").read_text())
    for job in state["jobs"]:
        if job["id"] == job_id:
            job["sent"]["early_stopping_patience"] = 3
    (ftctl_home / "jobs.json").write_text(json.dumps(state))
    result = ftctl("explain", job_id)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        "Warning: the server and the replay disagree (fired): the server says early stopping fired at step 72, "
        "best step 48 (eval_loss 0.4213); replaying the history with patience 3, min_delta 0.0, warmup 1 gives "
        "early stopping did not fire, best step 48 (eval_loss 0.4213). Showing the server's answer."]
    out = flat(result.stdout)
    assert ("Early stopping fired at step 72 (the server's answer; the replay of the history does not reproduce "
            "it).") in out
    assert "✓" not in out
    es = ftctl("explain", job_id, "--json").json()["early_stopping"]
    assert es["replay_agrees"] is False and es["cross_check"]["differences"] == ["fired"]
    assert es["fired"] is True and es["halt_step"] == 72  # the server's answer wins


def test_disagreement_from_a_saved_file(ftctl, scenario_file, tmp_path):
    job_id = job_with(ftctl, scenario_file, WORKED)
    saved = ftctl("metrics", job_id, "--json").json()
    saved["early_stopping"]["cross_check"]["server"]["best_step"] = 60  # a server that says otherwise
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(saved))
    result = ftctl("explain", "--from-file", path)
    assert result.exit_code == 0
    assert "the server's best step" not in result.stdout
    assert [line for line in result.stderr.splitlines() if "disagree (best_step)" in line]


def test_missing_eval_loss_is_flagged():
    rows = [{"train/global_step": 12, "eval/loss": 1.0}, {"train/global_step": 24, "eval/loss": None}]
    a = analyse({"status": "completed", "total_steps": 48}, rows)
    text = flat("\n".join(paragraphs(explain(a), 100)))
    assert "eval_loss was missing (no usable eval_loss in the history), which is not a finite number" in text
    assert "no usable eval_loss at step 24; ftctl reads a missing value as not finite" in text
    assert math.isnan(a.evaluations[1].eval_loss)
