"""Issue 2 end to end: the simulator through the CLI, as a user runs it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from kit import BASE, MODEL, WORKED



def create(ftctl, *args: str, env=None) -> str:
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_worked_example_through_the_cli(ftctl, scenario_file):
    scenario = scenario_file(WORKED, steps_per_epoch=24)
    job_id = create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--patience", "2",
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


def test_worked_example_summary_shows_best_halt_and_refund_at_a_glance(ftctl, scenario_file):
    job_id = create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                    scenario_file(WORKED, steps_per_epoch=24))
    plain = ftctl("retrieve", job_id)
    assert "early_stopping_best_step\t48\n" in plain.stdout
    assert "steps_refunded" not in plain.stdout  # not a field of the job: --fields could not ask for it
    tty = ftctl("retrieve", job_id, tty=120)
    assert "halted at step 72 · best eval_loss 0.4213 at step 48 (promoted) · 48 of 120 steps refunded" in tty.stdout


# Every public case of docs/early-stopping.md §7, on the simulator through the CLI (K = 12 steps).
NAN = "NaN"
CASES = [
    (1, [2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9, 0.8, 0.7, 0.6], 2, 0.0, 1, True, 72, 48, 1.0, 6, 48),
    (2, [1.0, 0.9, 0.8, 0.7, 0.6], 2, 0.0, 1, False, None, 60, 0.6, 5, 0),
    (3, [1.0, 0.5, 0.5, 0.5, 0.5], 2, 0.0, 0, True, 48, 24, 0.5, 4, 12),
    (4, [6.0, 5.0, 4.0, 4.0, 3.0, 3.0], 1, 0.0, 0, True, 48, 36, 4.0, 4, 24),
    (6, [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5], 2, 0.0, 0, True, 60, 36, 8.0, 5, 48),
    (12, [1.0, 0.8, NAN, 0.5, 0.4], 2, 0.0, 1, True, 36, 24, 0.8, 3, 24),
    (15, [NAN, 1.0, 0.9, 0.8], 2, 0.0, 1, True, 12, 12, None, 1, 36),
    (19, [1.0, 1.1, 1.2, 0.9, 0.8], 2, 0.0, 1, True, 36, 12, 1.0, 3, 24),
    (24, [1.0, 0.9, 0.8, 0.85, 0.86], 2, 0.0, 1, True, 60, 36, 0.8, 5, 0),
    (30, [1.0, 0.9, 0.8, 0.85], 2, 0.0, 1, False, None, 36, 0.8, 4, 0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_public_cases_on_the_simulator(ftctl, scenario_file, case):
    _, losses, p, d, w, stopped, halt, best_step, best_metric, evals_done, refunded = case
    n = len(losses)
    job_id = create(ftctl, "--n-evals", str(n), "--early-stopping", "--patience", str(p), "--min-delta", str(d),
                    "--warmup-evals", str(w), "--sim-scenario", scenario_file(losses, steps_per_epoch=12 * n))
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["early_stopped"] is stopped
    assert job["early_stopping_best_step"] == best_step
    assert job["early_stopping_best_metric"] == best_metric
    assert job["evals_completed"] == evals_done
    assert job["steps_completed"] == (halt if stopped else 12 * n)
    events = ftctl("events", job_id, "--json").json()
    refunds = [e["message"] for e in events if e["type"] == "refund"]
    assert refunds == ([f"Refunded {refunded} unused steps of {12 * n}"] if refunded else [])
    assert [e["step"] for e in events if e["type"] == "early_stopped"] == ([halt] if stopped else [])
    es = ftctl("metrics", job_id, "--json").json()["early_stopping"]
    assert (es["fired"], es["halt_step"], es["best_step"], es["best_eval_loss"], es["steps_refunded"]) == (
        stopped, halt, best_step, best_metric, refunded)


def test_metrics_json_is_strict_and_carries_the_contract_object(ftctl, scenario_file):
    job_id = create(ftctl, "--n-evals", "5", "--early-stopping",
                    "--sim-scenario", scenario_file([1.0, 0.8, NAN, 0.5, 0.4], steps_per_epoch=60))
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


@pytest.mark.parametrize("n_evals", [10, 20, 100, 1000])
@pytest.mark.parametrize("preset", ["plateau", "improving", "nan", "diverging", "noisy"])
def test_presets_keep_their_promise(ftctl, preset, n_evals):
    job_id = create(ftctl, "--n-epochs", "3", "--n-evals", str(n_evals), "--early-stopping", "--sim-scenario", preset)
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["status"] == "completed"
    if preset in ("plateau", "diverging", "nan"):
        assert job["early_stopped"] is True and job["steps_completed"] < job["total_steps"]
    if preset == "improving":
        assert job["early_stopped"] is False and job["steps_completed"] == job["total_steps"]
    es = ftctl("metrics", job_id, "--json").json()["early_stopping"]
    assert es["reason"] == {"nan": "non_finite_eval_loss", "improving": None}.get(
        preset, "patience_exhausted" if job["early_stopped"] else None)
    again = create(ftctl, "--n-epochs", "3", "--n-evals", str(n_evals), "--early-stopping", "--sim-scenario", preset)
    assert ftctl("retrieve", again, "--json").json()["steps_completed"] == job["steps_completed"]


def test_error_preset_ends_in_error(ftctl):
    job_id = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["status"] == "error" and job["early_stopped"] is False
    assert any(e["type"] == "job_error" for e in ftctl("events", job_id, "--json").json())


def test_generated_curve_is_deterministic_from_the_seed(ftctl):
    a = create(ftctl, "--n-evals", "12", "--random-seed", "7")
    b = create(ftctl, "--n-evals", "12", "--random-seed", "7")
    evals = lambda j: [e["eval_loss"] for e in ftctl("metrics", j, "--json").json()["evaluations"]]  # noqa: E731
    assert evals(a) == evals(b) and len(evals(a)) == 12
    c = create(ftctl, "--n-evals", "12", "--random-seed", "8")
    assert evals(c) != evals(a)


def test_dpo_job_with_early_stopping(ftctl, scenario_file):
    job_id = create(ftctl, "--training-method", "dpo", "--dpo-beta", "0.1", "--n-evals", "10", "--n-epochs", "5",
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


# --- checks before anything is sent: exit 2, one line, nothing created ---------------------------

BAD = [
    (["--n-evals", "3", "--early-stopping", "--patience", "2", "--warmup-evals", "1"],
     "Early stopping requires n_evals >= patience + warmup_evals + 1 = 4 (got n_evals=3)"),
    (["--n-evals", "0", "--early-stopping"],
     "Early stopping requires n_evals >= patience + warmup_evals + 1 = 4 (got n_evals=0)"),
    (["--early-stopping", "--patience", "0", "--n-evals", "10"], "early_stopping_patience must be >= 1 (got 0)"),
    (["--early-stopping", "--warmup-evals", "-1", "--n-evals", "10"],
     "early_stopping_warmup_evals must be >= 0 (got -1)"),
    (["--early-stopping", "--min-delta", "-0.01", "--n-evals", "10"],
     "early_stopping_min_delta must be >= 0 (got -0.01)"),
    (["--early-stopping", "--min-delta", "nan", "--n-evals", "10"], "early_stopping_min_delta must be >= 0 (got nan)"),
    (["--early-stopping", "--min-delta", "inf", "--n-evals", "10"], "early_stopping_min_delta must be finite (got inf)"),
    (["--early-stopping", "--patience", "2.5", "--n-evals", "10"], "'2.5' is not a valid int"),
    (["--n-epochs", "0"], "n_epochs must be >= 1 (got 0)"),
    (["--learning-rate", "-1"], "learning_rate must be > 0 (got -1)"),
    (["--warmup-ratio", "1.5"], "warmup_ratio must be >= 0 and <= 1 (got 1.5)"),
    (["--batch-size", "big"], "--batch-size must be a whole number >= 1 or 'max' (got 'big')"),
    (["--training-method", "ppo"], "training_method must be sft or dpo (got 'ppo')"),
    (["--dpo-beta", "0.1"], "--dpo-beta applies only to --training-method dpo (got sft)"),
    (["--suffix", "x" * 41], "suffix must be at most 40"),
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
    assert "Early stopping requires a validation file (validation_file)." in result.stderr


def test_scenario_with_fewer_values_than_evaluations(ftctl, scenario_file):
    result = ftctl(*BASE, "--n-evals", "10", "--sim-scenario", scenario_file([1.0, 0.9]))
    assert result.exit_code == 2
    assert "has 2 eval_loss values but the job runs n_evals=10" in result.stderr
    assert ftctl("list", "--json").json() == []


def test_warnings_do_not_stop_a_valid_request(ftctl):
    result = ftctl(*BASE, "--n-evals", "3", "--early-stopping", "--warmup-evals", "0", "-q")
    assert result.exit_code == 0 and result.stdout.startswith("ft-")
    assert "no steps can be refunded" in result.stderr
    result = ftctl(*BASE, "--patience", "3", "-q")
    assert result.exit_code == 0 and "has no effect" in result.stderr


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


# --- several processes share the store -------------------------------------------------------------


def test_a_job_created_in_one_process_is_seen_and_cancelled_in_others(ftctl_proc):
    slow = {"FTCTL_SIM_SPEED": "0.5"}
    made = ftctl_proc(*BASE, "--n-evals", "4", "--early-stopping", "-q", env=slow)
    assert made.exit_code == 0, made.stderr
    job_id = made.stdout.strip()
    assert ftctl_proc("retrieve", job_id, "--json", env=slow).json()["status"] in ("pending", "queued")
    assert job_id in [j["id"] for j in ftctl_proc("list", "--json", env=slow).json()]
    refused = ftctl_proc("cancel", job_id, env=slow)
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    cancelled = ftctl_proc("cancel", job_id, "--yes", "--json", env=slow)
    assert cancelled.exit_code == 0 and cancelled.json()["status"] in ("cancel_requested", "cancelled")
    events = ftctl_proc("events", job_id, "--json", env=slow).json()
    assert "cancel_requested" in [e["type"] for e in events]


def test_concurrent_creates_lose_nothing(ftctl_proc):
    def one(_):
        return ftctl_proc(*BASE, "--n-evals", "4", "-q").stdout.strip()

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(one, range(12)))
    assert all(i.startswith("ft-") for i in ids) and len(set(ids)) == 12
    listed = {j["id"] for j in ftctl_proc("list", "--json").json()}
    assert set(ids) <= listed


def test_job_advances_with_the_clock(ftctl, sim_time):
    """At a finite speed a job moves pending → queued → running → uploading → completed."""
    job_id = create(ftctl, "--n-evals", "4", "--early-stopping", "--sim-scenario", "improving",
                    env={"FTCTL_SIM_SPEED": "10"})
    seen = []
    for _ in range(100):
        job = ftctl("retrieve", job_id, "--json", env={"FTCTL_SIM_SPEED": "10"}).json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] == "completed":
            break
        sim_time.advance(0.05)
    assert seen == ["pending", "queued", "running", "uploading", "completed"]
    assert job["steps_completed"] == job["total_steps"] == 24


def test_a_base_url_without_a_key_is_not_dropped_silently(ftctl):
    result = ftctl("list", "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 0
    assert "http://127.0.0.1:9 is not used: set TOGETHER_API_KEY or pass --backend together" in result.stderr
    result = ftctl("list", env={"TOGETHER_BASE_URL": "https://example.invalid"})
    assert "https://example.invalid is not used" in result.stderr


@pytest.mark.parametrize("total,n_evals", [(120, 10), (100, 8), (24, 24), (1_000_000, 10_000), (7, 3)])
def test_the_schedule_is_the_contracts_rounding_whatever_the_path(total, n_evals):
    from ftctl import early_stopping as es
    from ftctl.backends.simulator.timeline import make_plan

    plan = make_plan(n_epochs=1, steps_per_epoch=total, n_evals=n_evals, eval_loss=[1.0] * n_evals,
                     settings=None, fail_at=None, n_checkpoints=1, seed=0)
    assert plan.eval_steps == tuple(es.evaluation_step(i, total, n_evals) for i in range(1, n_evals + 1))


def test_events_can_be_filtered_by_type(ftctl, scenario_file):
    job_id = create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping",
                    "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24))
    rows = ftctl("events", job_id, "--type", "early_stopped", "--type", "REFUND", "--json").json()
    assert [e["type"] for e in rows] == ["early_stopped", "refund"]
    empty = ftctl("events", job_id, "--type", "")
    assert empty.exit_code == 2 and "--type must name an event type" in empty.stderr


def test_a_cancel_that_loses_the_race_still_reads_as_cancelled(tmp_path):
    """Two processes cancel at once; the one whose request was not the one recorded must still
    answer with a cancelled job, not the pending job it read before."""
    from ftctl.create_request import CreateOptions, build_body
    from ftctl.backends.simulator.backend import Simulator

    body = build_body(CreateOptions(training_file="file-train", validation_file="file-val", model="Qwen/Qwen3.5-9B", n_evals=4,
                                    early_stopping=True))
    job_id = Simulator(tmp_path, speed=1.0, clock=lambda: 1000.0).create(body)["id"]
    other = Simulator(tmp_path, speed=1.0, clock=lambda: 1000.4)
    calls = []

    def late_clock():  # the other process records its cancel right after this one reads the clock
        if not calls:
            other.cancel(job_id)
        calls.append(1)
        return 1000.2

    answer = Simulator(tmp_path, speed=1.0, clock=late_clock).cancel(job_id)
    assert answer["status"] == "cancel_requested"
