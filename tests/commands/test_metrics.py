"""ftctl metrics --json: strict JSON carrying the early-stopping object."""

from __future__ import annotations

from kit import create_job


def test_metrics_json_is_strict_and_carries_the_contract_object(ftctl, scenario_file):
    job_id = create_job(ftctl, "--n-evals", "5", "--early-stopping",
                    "--sim-scenario", scenario_file([1.0, 0.8, "NaN", 0.5, 0.4], steps_per_epoch=60))
    data = ftctl("metrics", job_id, "--json").json()  # the fixture's parser rejects bare NaN
    assert data["job_id"] == job_id
    assert data["evaluations"][2] == {"eval": 3, "step": 36, "eval_loss": "NaN"}
    assert set(data["early_stopping"]) >= {
        "fired", "reason", "halt_step", "halt_eval", "best_step", "best_eval", "best_eval_loss",
        "non_improving_steps", "patience", "min_delta", "warmup_evals", "steps_refunded", "total_steps"}
    assert data["early_stopping"]["reason"] == "non_finite_eval_loss"
    raw = ftctl("metrics", job_id, "--raw").json()["metrics"]
    assert any(row.get("eval/loss") == "NaN" for row in raw)
    assert all("train/global_step" in row for row in raw)
