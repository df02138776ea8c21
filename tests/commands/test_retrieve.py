"""ftctl retrieve (and the ids every reading command takes): the job at a glance, unknown and malformed ids."""

from __future__ import annotations

from kit import WORKED, create_job


def test_worked_example_summary_shows_best_halt_and_refund_at_a_glance(ftctl, scenario_file):
    job_id = create_job(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                    scenario_file(WORKED, steps_per_epoch=24))
    plain = ftctl("retrieve", job_id)
    assert "early_stopping_best_step\t48\n" in plain.stdout
    assert "steps_refunded" not in plain.stdout  # not a field of the job: --fields could not ask for it
    tty = ftctl("retrieve", job_id, tty=120)
    assert "halted at step 72 · best eval_loss 0.4213 at step 48 (promoted) · 48 of 120 steps refunded" in tty.stdout


def test_unknown_id_exits_6(ftctl):
    for cmd in ("retrieve", "events", "metrics", "checkpoints"):
        result = ftctl(cmd, "ft-00000000-0000-0000-0000-000000000000")
        assert result.exit_code == 6, (cmd, result.stderr)
        assert "no fine-tuning job with id 'ft-00000000-0000-0000-0000-000000000000'" in result.stderr
    result = ftctl("cancel", "ft-nope", "--yes")
    assert result.exit_code == 6


def test_malformed_id_exits_2(ftctl):
    for bad in ("", "ft- spaced", "x" * 200, "ft-é/../etc"):
        result = ftctl("retrieve", bad)
        assert result.exit_code == 2, bad
        assert "is not a job id" in result.stderr


def test_a_base_url_without_a_key_is_not_dropped_silently(ftctl):
    result = ftctl("list", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 0
    assert "http://127.0.0.1:9 is not used: set TOGETHER_API_KEY or pass --backend together" in result.stderr
    result = ftctl("list", env={"TOGETHER_BASE_URL": "https://example.invalid"})
    assert "https://example.invalid is not used" in result.stderr
