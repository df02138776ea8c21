"""ftctl cancel: across processes sharing the store, and when two cancels race."""

from __future__ import annotations

from kit import BASE, MODEL


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


def test_a_cancel_that_loses_the_race_still_reads_as_cancelled(tmp_path):
    """Two processes cancel at once; the one whose request was not the one recorded must still
    answer with a cancelled job, not the pending job it read before."""
    from ftctl.create_request import CreateOptions, build_body
    from ftctl.backends.simulator.backend import Simulator

    body = build_body(CreateOptions(training_file="file-train", validation_file="file-val", model=MODEL, n_evals=4,
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
