"""Issue 12, part B: what a person sees in the first hour. Ids and times that can be copied in one
piece at any width; a failed job that says why everywhere; only fields that can be asked for; the
early-stopping settings echoed after create, and "on, not fired (yet)" told apart from "off"."""

from __future__ import annotations

import re

import pytest

from ftctl.output import fields
from ftctl.output.views import PLAIN_JOB_KEYS, fmt_time

WORKED = [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47, 0.40, 0.39, 0.38, 0.37]
# A long model name: the column most likely to push an id or a time onto two lines.
BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"]
SLOW = {"FTCTL_SIM_SPEED": "0.001"}  # a job stays pending for hours of simulated time
REASON = "Training failed at step 10: the worker ran out of memory (simulated)"


def create(ftctl, *args: str, env=None) -> str:
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def stopped(ftctl, scenario_file) -> str:
    return create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--n-checkpoints", "3", "--early-stopping",
                  "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24))


@pytest.fixture
def failed(ftctl) -> str:
    return create(ftctl, "--n-evals", "4", "--early-stopping", "--sim-scenario", "error")


def tty(ftctl, *args: str, width: int):
    result = ftctl(*args, tty=width, env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    return result.stdout.splitlines()


def whole(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


# -- 3. ids, times and types stay whole -----------------------------------------------------------

WIDTHS = [60, 80, 120]


@pytest.mark.parametrize("width", WIDTHS)
def test_list_keeps_each_id_and_time_whole(ftctl, stopped, failed, width):
    jobs = ftctl("list", "--json").json()
    lines = tty(ftctl, "list", width=width)
    for job in jobs:
        assert whole(lines, job["id"]), (width, job["id"], lines)
        assert whole(lines, fmt_time(job["created_at"])), (width, lines)
        assert whole(lines, job["status"])
    assert all(len(line) <= width for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_events_keep_each_time_and_type_whole(ftctl, stopped, width):
    events = ftctl("events", stopped, "--json").json()
    lines = tty(ftctl, "events", stopped, width=width)
    for event in events:
        assert whole(lines, fmt_time(event["created_at"])), (width, lines)
        assert whole(lines, event["type"]), (width, event["type"], lines)
    text = " ".join(line.strip() for line in lines)
    assert "did not improve for 2 consecutive" in re.sub(r"\s+", " ", text)  # messages fold, never cut
    assert all(len(line) <= width for line in lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_checkpoints_keep_each_download_id_time_and_type_whole(ftctl, stopped, width):
    rows = ftctl("checkpoints", stopped, "--json").json()
    lines = tty(ftctl, "checkpoints", stopped, width=width)
    text = "\n".join(lines)
    for c in rows:
        download = stopped if c["checkpoint_type"] == "Final" else f"{stopped}:{c['step']}"
        assert any(line.split()[0] == download for line in lines if line.split()), (width, download, lines)
        assert whole(lines, c["checkpoint_type"]), (width, lines)
        time = fmt_time(c["created_at"])
        assert whole(lines, time) or time[:4] not in text, (width, lines)  # whole, or the column dropped
    assert all(len(line) <= width for line in lines)


def test_terminal_times_are_iso_8601_to_the_second():
    assert fmt_time("2026-12-01T22:35:46.869Z") == "2026-12-01T22:35:46Z"
    assert fmt_time("yesterday") == "yesterday"  # anything else as given


# -- 5. a failed job says why ---------------------------------------------------------------------


def test_retrieve_says_why_a_job_failed(ftctl, failed):
    lines = tty(ftctl, "retrieve", failed, width=120)
    assert whole(lines, f"ended       error: {REASON}")
    assert not any("so far" in line for line in lines)  # the job has ended
    assert whole(lines, "did not fire before the job ended error")
    piped = ftctl("retrieve", failed)
    assert f"ended error: {REASON}" in piped.stderr  # not a field of the job: stderr, kept by a log
    job = ftctl("retrieve", failed, "--json").json()
    assert "failure" not in job and job["status"] == "error"  # the API's object, unchanged


def test_explain_and_metrics_say_why_a_job_failed(ftctl, failed):
    out = ftctl("explain", failed).stdout
    assert out.startswith(f"The job ended error: {REASON}")
    assert ftctl("explain", failed, "--json").json()["failure"] == {"status": "error", "reason": REASON}
    assert ftctl("metrics", failed, "--fields", "failure").json() == {"failure": {"status": "error",
                                                                                  "reason": REASON}}
    assert ftctl("metrics", failed, "--no-chart", "--no-table").stdout.count(REASON) == 1


def test_failure_is_null_for_a_job_that_did_not_fail(ftctl, stopped):
    assert ftctl("explain", stopped, "--json").json()["failure"] is None
    assert ftctl("metrics", stopped, "--json").json()["failure"] is None


def test_wait_says_why_a_job_failed(ftctl, failed):
    result = ftctl("wait", failed, tty=100, env={"NO_COLOR": "1"})
    assert result.exit_code == 5
    assert f"error: {REASON}" in result.stdout  # the report's job view
    assert f"ended error: {REASON}" in result.stderr  # the exit-5 line


def test_a_completed_job_does_not_say_so_far(ftctl, scenario_file):
    job_id = create(ftctl, "--n-evals", "6", "--early-stopping", "--patience", "3", "--sim-scenario", "improving")
    lines = tty(ftctl, "retrieve", job_id, width=120)
    early = next(line for line in lines if line.startswith("early stop"))
    assert "so far" not in early and "did not fire: the final model is step 24" in early


# -- 7. what is printed can be asked for; create echoes what it sent ------------------------------


def test_every_field_the_piped_job_view_prints_can_be_asked_for(ftctl, stopped):
    printed = [line.split("\t")[0] for line in ftctl("retrieve", stopped).stdout.splitlines()]
    assert printed and set(printed) <= set(fields.KINDS["job"])
    assert set(PLAIN_JOB_KEYS) <= set(fields.KINDS["job"])  # the one list of the plain view
    for name in printed:
        assert ftctl("retrieve", stopped, "--fields", name).exit_code == 0, name


def test_create_echoes_the_early_stopping_settings_it_sent(ftctl):
    on = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--patience", "3", "--min-delta", "0.01",
               tty=120, env={**SLOW, "NO_COLOR": "1"})
    assert on.exit_code == 0, on.stderr
    assert "early stop  on (patience 3, min_delta 0.01, warmup 1) · not fired (yet)" in on.stdout
    piped = ftctl(*BASE, "--n-evals", "10", "--early-stopping", env=SLOW)
    assert "Early stopping: on (patience 2, min_delta 0.0, warmup 1) · not fired (yet)" in piped.stderr
    assert "early_stopped\tfalse" in piped.stdout  # the API's field, as it is


def test_a_pending_job_tells_on_from_off(ftctl):
    on = create(ftctl, "--n-evals", "10", "--early-stopping", env=SLOW)
    off = create(ftctl, "--n-evals", "10", env=SLOW)
    on_lines = tty(ftctl, "retrieve", on, width=120)
    off_lines = tty(ftctl, "retrieve", off, width=120)
    assert any(line.startswith("early stop") and "on (" in line and "not fired (yet)" in line for line in on_lines)
    assert any(re.fullmatch(r"early stop\s+off\s*", line) for line in off_lines)


def test_the_reason_is_said_once_on_a_terminal(ftctl, failed):
    out = ftctl("metrics", failed, tty=120, env={"NO_COLOR": "1"}).stdout
    assert out.count(REASON) == 1  # in the job view, not again in the explanation under it
