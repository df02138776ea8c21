"""The embedded simulator through the CLI: the public cases of docs/early-stopping.md §7, the presets' promises, its clock and schedule."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from kit import BASE, create_job


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
    job_id = create_job(ftctl, "--n-evals", str(n), "--early-stopping", "--patience", str(p), "--min-delta", str(d),
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


@pytest.mark.parametrize("n_evals", [10, 20, 100, 1000])
@pytest.mark.parametrize("preset", ["plateau", "improving", "nan", "diverging", "noisy"])
def test_presets_keep_their_promise(ftctl, preset, n_evals):
    job_id = create_job(ftctl, "--n-epochs", "3", "--n-evals", str(n_evals), "--early-stopping", "--sim-scenario", preset)
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["status"] == "completed"
    if preset in ("plateau", "diverging", "nan"):
        assert job["early_stopped"] is True and job["steps_completed"] < job["total_steps"]
    if preset == "improving":
        assert job["early_stopped"] is False and job["steps_completed"] == job["total_steps"]
    es = ftctl("metrics", job_id, "--json").json()["early_stopping"]
    assert es["reason"] == {"nan": "non_finite_eval_loss", "improving": None}.get(
        preset, "patience_exhausted" if job["early_stopped"] else None)
    again = create_job(ftctl, "--n-epochs", "3", "--n-evals", str(n_evals), "--early-stopping", "--sim-scenario", preset)
    assert ftctl("retrieve", again, "--json").json()["steps_completed"] == job["steps_completed"]


def test_error_preset_ends_in_error(ftctl):
    job_id = create_job(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    job = ftctl("retrieve", job_id, "--json").json()
    assert job["status"] == "error" and job["early_stopped"] is False
    assert any(e["type"] == "job_error" for e in ftctl("events", job_id, "--json").json())


def test_generated_curve_is_deterministic_from_the_seed(ftctl):
    a = create_job(ftctl, "--n-evals", "12", "--random-seed", "7")
    b = create_job(ftctl, "--n-evals", "12", "--random-seed", "7")
    evals = lambda j: [e["eval_loss"] for e in ftctl("metrics", j, "--json").json()["evaluations"]]  # noqa: E731
    assert evals(a) == evals(b) and len(evals(a)) == 12
    c = create_job(ftctl, "--n-evals", "12", "--random-seed", "8")
    assert evals(c) != evals(a)


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
    job_id = create_job(ftctl, "--n-evals", "4", "--early-stopping", "--sim-scenario", "improving",
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


@pytest.mark.parametrize("total,n_evals", [(120, 10), (100, 8), (24, 24), (1_000_000, 10_000), (7, 3)])
def test_the_schedule_is_the_contracts_rounding_whatever_the_path(total, n_evals):
    from ftctl import early_stopping as es
    from ftctl.backends.simulator.timeline import make_plan

    plan = make_plan(n_epochs=1, steps_per_epoch=total, n_evals=n_evals, eval_loss=[1.0] * n_evals,
                     settings=None, fail_at=None, n_checkpoints=1, seed=0)
    assert plan.eval_steps == tuple(es.evaluation_step(i, total, n_evals) for i in range(1, n_evals + 1))
