"""ftctl events: filtering the log by type."""

from __future__ import annotations

from kit import WORKED, create_job


def test_events_can_be_filtered_by_type(ftctl, scenario_file):
    job_id = create_job(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping",
                    "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24))
    rows = ftctl("events", job_id, "--type", "early_stopped", "--type", "REFUND", "--json").json()
    assert [e["type"] for e in rows] == ["early_stopped", "refund"]
    empty = ftctl("events", job_id, "--type", "")
    assert empty.exit_code == 2 and "--type must name an event type" in empty.stderr
