"""ftctl create on the simulator: the worked example end to end, the body it sends, its checks and warnings."""

from __future__ import annotations

import json

import pytest
from kit import BASE, MODEL, WORKED, create_job


def test_worked_example_through_the_cli(ftctl, scenario_file):
    scenario = scenario_file(WORKED, steps_per_epoch=24)
    job_id = create_job(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--patience", "2",
                    "--min-delta", "0", "--warmup-evals", "1", "--sim-scenario", scenario)
    job = ftctl("retrieve", job_id, "--json").json()
    assert {k: job[k] for k in ("status", "epochs_completed", "evals_completed", "total_steps",
                                "steps_completed", "early_stopped", "early_stopping_best_step",
                                "early_stopping_best_metric")} == {
        "status": "completed", "epochs_completed": 3, "evals_completed": 6, "total_steps": 120,
        "steps_completed": 72, "early_stopped": True, "early_stopping_best_step": 48,
        "early_stopping_best_metric": 0.4213}
    events = ftctl("events", job_id, "--json").json()
    stopped = [e for e in events if e["type"] == "early_stopped"]
    assert len(stopped) == 1
    assert (stopped[0]["step"], stopped[0]["early_stopping_best_step"],
            stopped[0]["early_stopping_best_metric_value"]) == (72, 48, 0.4213)
    (refund,) = [e for e in events if e["type"] == "refund"]
    assert refund["message"] == "Refunded 48 unused steps of 120"
    # the event log is in the API's order
    order = [e["type"] for e in events]
    expected = ["job_pending", "job_start", "model_downloading", "model_download_complete", "training_start",
                "early_stopped", "refund", "training_complete", "model_uploading", "model_upload_complete",
                "job_complete"]
    assert [t for t in order if t in expected] == expected
    assert order.index("epoch_complete") < order.index("early_stopped")
    # the promoted checkpoint is the best step
    final = [c for c in ftctl("checkpoints", job_id, "--json").json() if c["checkpoint_type"] == "Final"]
    assert [c["step"] for c in final] == [48]


def test_dpo_job_with_early_stopping(ftctl, scenario_file):
    job_id = create_job(ftctl, "--training-method", "dpo", "--dpo-beta", "0.1", "--n-evals", "10", "--n-epochs", "5",
                    "--early-stopping", "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24))
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["training_method"]["method"] == "dpo" and job["training_method"]["dpo_beta"] == 0.1
    assert (job["early_stopped"], job["early_stopping_best_step"]) == (True, 48)


def test_dry_run_prints_the_body_as_the_vendor_sdk_sends_it(ftctl):
    result = ftctl("create", "-t", "file-a", "-v", "file-b", "-m", MODEL, "--n-evals", "5", "--early-stopping",
                   "--patience", "2", "--min-delta", "0.01", "--warmup-evals", "1", "--lora", "--dry-run")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert body == {
        "training_file": "file-a", "validation_file": "file-b", "packing": True, "model": MODEL, "n_epochs": 1,
        "learning_rate": 1e-05,
        "lr_scheduler": {"lr_scheduler_type": "cosine", "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}},
        "warmup_ratio": 0.0, "max_grad_norm": 1.0, "weight_decay": 0.0, "n_checkpoints": 1, "n_evals": 5,
        "batch_size": "max", "early_stopping_enabled": True, "early_stopping_patience": 2,
        "early_stopping_min_delta": 0.01, "early_stopping_warmup_evals": 1,
        "training_type": {"type": "Lora", "lora_dropout": 0.0, "lora_trainable_modules": "all-linear"},
        "training_method": {"method": "sft", "train_on_inputs": "auto"}}
    assert ftctl("list", "--json").json() == []


def test_unset_early_stopping_knobs_are_omitted(ftctl):
    body = json.loads(ftctl(*BASE, "--n-evals", "4", "--early-stopping", "--dry-run").stdout)
    assert body["early_stopping_enabled"] is True
    assert not {"early_stopping_patience", "early_stopping_min_delta", "early_stopping_warmup_evals"} & set(body)


BAD = [
    (["--n-evals", "3", "--early-stopping", "--patience", "2", "--warmup-evals", "1"],
     "--early-stopping requires --n-evals >= --patience + --warmup-evals + 1 = 4 (got --n-evals=3)"),
    (["--n-evals", "0", "--early-stopping"],
     "--early-stopping requires --n-evals >= --patience + --warmup-evals + 1 = 4 (got --n-evals=0)"),
    (["--early-stopping", "--patience", "0", "--n-evals", "10"], "--patience must be >= 1 (got 0)"),
    (["--early-stopping", "--warmup-evals", "-1", "--n-evals", "10"],
     "--warmup-evals must be >= 0 (got -1)"),
    (["--early-stopping", "--min-delta", "-0.01", "--n-evals", "10"],
     "--min-delta must be >= 0 (got -0.01)"),
    (["--early-stopping", "--min-delta", "nan", "--n-evals", "10"], "--min-delta must be >= 0 (got nan)"),
    (["--early-stopping", "--min-delta", "inf", "--n-evals", "10"], "--min-delta must be finite (got inf)"),
    (["--early-stopping", "--patience", "2.5", "--n-evals", "10"], "'2.5' is not a valid int"),
    (["--n-epochs", "0"], "--n-epochs must be >= 1 (got 0)"),
    (["--learning-rate", "-1"], "--learning-rate must be > 0 (got -1)"),
    (["--warmup-ratio", "1.5"], "--warmup-ratio must be >= 0 and <= 1 (got 1.5)"),
    (["--batch-size", "big"], "--batch-size must be a whole number >= 1 or 'max' (got 'big')"),
    (["--training-method", "ppo"], "--training-method must be sft or dpo (got 'ppo')"),
    (["--dpo-beta", "0.1"], "--dpo-beta applies only to --training-method dpo (got sft)"),
    (["--suffix", "x" * 41], "--suffix must be at most 40"),
    (["--sim-scenario", "nonesuch"], "unknown --sim-scenario 'nonesuch'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_nothing_created(ftctl, args, message):
    result = ftctl(*BASE, *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert ftctl("list", "--json").json() == []


def test_no_validation_file_with_early_stopping(ftctl):
    result = ftctl("create", "-t", "f", "-m", MODEL, "--n-evals", "10", "--early-stopping")
    assert result.exit_code == 2
    assert "--early-stopping requires a validation file (--validation-file)." in result.stderr


def test_scenario_with_fewer_values_than_evaluations(ftctl, scenario_file):
    result = ftctl(*BASE, "--n-evals", "10", "--sim-scenario", scenario_file([1.0, 0.9]))
    assert result.exit_code == 2
    assert "has 2 eval_loss values but the job runs --n-evals=10" in result.stderr
    assert ftctl("list", "--json").json() == []


def test_warnings_do_not_stop_a_valid_request(ftctl):
    result = ftctl(*BASE, "--n-evals", "3", "--early-stopping", "--warmup-evals", "0", "-q")
    assert result.exit_code == 0 and result.stdout.startswith("ft-")
    assert "no steps can be refunded" in result.stderr
    result = ftctl(*BASE, "--patience", "3", "-q")
    assert result.exit_code == 0 and "has no effect" in result.stderr
