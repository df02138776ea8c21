"""ftctl wait / --wait: every way a wait ends, the lines it prints off a terminal, the live view on
one, and polls that fail for a moment. Simulated time: the simulator's clock and the wait's sleep
are one fake sim_time, so a two-minute job is waited for in milliseconds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import ftctl.follow as follow
from ftctl.errors import ApiError, NotFound
from ftctl.backends.simulator.backend import Simulator
from kit import BASE, WORKED

SLOW = {"FTCTL_SIM_SPEED": "10"}  # 10 steps per (simulated) second
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def create(ftctl, *args, env=None) -> str:
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def worked(ftctl, scenario_file, env=SLOW) -> str:
    return create(ftctl, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                  scenario_file(WORKED, steps_per_epoch=24), env=env)


def progress_lines(stderr: str, job_id: str) -> list[str]:
    return [line[len(job_id) + 2:] for line in stderr.splitlines() if line.startswith(job_id + "  ")]


def test_completes_while_waiting_one_line_per_change(ftctl, scenario_file, sim_time):
    job_id = worked(ftctl, scenario_file)
    result = ftctl("wait", job_id, env=SLOW)
    assert result.exit_code == 0, result.stderr
    lines = progress_lines(result.stderr, job_id)
    assert lines[0] == "pending · step 0/120"
    assert "running · step 0/120" in lines or any(line.startswith("running") for line in lines)
    evals = [line for line in lines if line.startswith("eval ")]
    assert evals == [
        "eval 1 of 10 · step 12 · eval_loss 2.0 · improved · best 2.0 @ step 12 · warmup 1 of 1 · "
        "next eval must be below 2.0",
        "eval 2 of 10 · step 24 · eval_loss 1.5 · improved · best 1.5 @ step 24 · non-improving: 0 of 2 (patience) "
        "· next eval must be below 1.5",
        "eval 3 of 10 · step 36 · eval_loss 1.2 · improved · best 1.2 @ step 36 · non-improving: 0 of 2 (patience) "
        "· next eval must be below 1.2",
        "eval 4 of 10 · step 48 · eval_loss 0.4213 · improved · best 0.4213 @ step 48 · non-improving: 0 of 2 "
        "(patience) · next eval must be below 0.4213",
        "eval 5 of 10 · step 60 · eval_loss 0.45 · best 0.4213 @ step 48 · non-improving: 1 of 2 (patience) · "
        "next eval must be below 0.4213",
        "eval 6 of 10 · step 72 · eval_loss 0.47 · early stopping halts here (patience 2) · best 0.4213 @ step 48",
    ]
    assert lines[-1] == "completed · step 72/120"
    statuses = [line.split(" ·")[0] for line in lines if not line.startswith("eval ")]
    assert len(statuses) == len(set(statuses))  # a line per change, never a repeated snapshot
    # when it ends: the job, the chart and the explanation on stdout
    assert "early_stopped\ttrue" in result.stdout
    assert "★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2" in result.stdout
    assert "Early stopping fired at step 72 (evaluation 6 of 10)" in result.stdout


def test_already_finished_when_called(ftctl, scenario_file):
    job_id = worked(ftctl, scenario_file, env=None)  # FTCTL_SIM_SPEED=inf: done at creation
    result = ftctl("wait", job_id)
    assert result.exit_code == 0, result.stderr
    lines = progress_lines(result.stderr, job_id)
    assert len([line for line in lines if line.startswith("eval ")]) == 6
    assert lines[-1] == "completed · step 72/120"
    assert "Early stopping fired at step 72" in result.stdout


def test_already_failed_when_called_exits_5(ftctl):
    job_id = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error")
    result = ftctl("wait", job_id)
    assert result.exit_code == 5
    assert result.stderr.splitlines()[-1].startswith(f"Error: job {job_id} ended error")
    assert "did not fire before the job ended (error)" in " ".join(result.stdout.split())


def test_fails_while_waiting_exits_5(ftctl, sim_time):
    job_id = create(ftctl, "--n-evals", "10", "--early-stopping", "--sim-scenario", "error", env=SLOW)
    result = ftctl("wait", job_id, env=SLOW)
    assert result.exit_code == 5
    lines = progress_lines(result.stderr, job_id)
    assert lines[0].startswith("pending") and lines[-1].startswith("error")
    assert result.stderr.splitlines()[-1].startswith(f"Error: job {job_id} ended error")


def test_cancelled_while_waiting_exits_5(ftctl, sim_time, ftctl_home):
    # a preset's 24 steps: the sample file alone would make a 10-step job, over before the cancel
    job_id = create(ftctl, "--n-evals", "10", "--sim-scenario", "improving", env=SLOW)

    def cancel_from_elsewhere(nap: int) -> None:  # someone cancels the job during the third pause
        if nap == 3:
            sim = Simulator(ftctl_home, speed=10, clock=sim_time.now)
            sim.cancel(job_id)
            sim.close()

    sim_time.on_nap = cancel_from_elsewhere
    result = ftctl("wait", job_id, "--json", env=SLOW)
    assert result.exit_code == 5
    assert result.json()["status"] == "cancelled"  # --json: the job as it ended
    assert "ended cancelled" in result.stderr.splitlines()[-1]


def test_timeout_exits_3_and_the_job_keeps_running(ftctl, scenario_file, sim_time):
    job_id = worked(ftctl, scenario_file)
    start = sim_time.t
    result = ftctl("wait", job_id, "--timeout", "2.5", "--interval", "1", env=SLOW)
    assert result.exit_code == 3
    assert sim_time.t - start == pytest.approx(2.5)  # the last poll is at the deadline, not past it
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"Error: timed out after 2.5s: job {job_id} is still running, at step ")
    assert f"keep waiting with: ftctl wait {job_id}" in last
    assert result.stdout == ""
    assert ftctl("retrieve", job_id, "--json", env=SLOW).json()["status"] == "running"


def test_timeout_under_json_prints_the_job_as_it_stood(ftctl, scenario_file, sim_time):
    job_id = worked(ftctl, scenario_file, env={"FTCTL_SIM_SPEED": "0.5"})  # 156 s of simulated time
    result = ftctl("wait", job_id, "--timeout", "1m", "--json")
    assert result.exit_code == 3
    assert result.json()["id"] == job_id and result.json()["status"] in ("pending", "queued", "running")
    assert json.loads(result.stderr.splitlines()[-1])["error"]["code"] == "timeout"


def test_retrieve_wait_and_create_wait(ftctl, scenario_file, sim_time):
    job_id = worked(ftctl, scenario_file)
    result = ftctl("retrieve", job_id, "--wait", "--json", env=SLOW)
    assert result.exit_code == 0
    assert result.json()["status"] == "completed" and result.stdout.count("\n") == 1
    created = ftctl(*BASE, "--n-evals", "10", "--early-stopping", "--sim-scenario",
                    scenario_file(WORKED, steps_per_epoch=120), "--wait", "--json", env=SLOW)
    assert created.exit_code == 0
    job = created.json()  # one JSON object: the job at its end, not the job at creation too
    assert (job["status"], job["early_stopped"], job["early_stopping_best_step"]) == ("completed", True, 48)
    quiet = ftctl(*BASE, "--n-evals", "4", "--sim-scenario", "error", "--wait", "-q", env=SLOW)
    assert quiet.exit_code == 5 and re.fullmatch(r"ft-[0-9a-f-]+\n", quiet.stdout)


@pytest.mark.parametrize("args, message", [
    (["--timeout", "5x"], "--timeout must be a duration: seconds (90, 0.5) or a number with a unit s, m or h "
                          "(30s, 5m, 2h) (got '5x')"),
    (["--timeout", "-1"], "(got '-1')"),
    (["--interval", "0"], "--interval must be more than 0 seconds (got '0')"),
    (["--interval", "inf"], "--interval must be a duration"),
])
def test_bad_durations_exit_2(ftctl, scenario_file, args, message):
    job_id = worked(ftctl, scenario_file, env=None)
    result = ftctl("wait", job_id, *args)
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_create_with_a_bad_duration_creates_nothing(ftctl):
    for args in (["--wait", "--timeout", "soon"], ["--timeout", "5m"]):
        result = ftctl(*BASE, "--n-evals", "4", *args)
        assert result.exit_code == 2, result.stderr
    assert "--timeout and --interval apply to waiting: add --wait" in result.stderr
    assert ftctl("list", "--json").json() == []


@pytest.mark.parametrize("text, seconds", [("90", 90), ("0.5", 0.5), ("30s", 30), ("5m", 300), ("2h", 7200),
                                           ("1.5M", 90)])
def test_durations(text, seconds):
    assert follow.parse_duration(text) == seconds


def test_live_view_on_a_terminal(ftctl, scenario_file, sim_time):
    job_id = worked(ftctl, scenario_file)
    result = ftctl("wait", job_id, tty=100, env={**SLOW, "NO_COLOR": "1"})
    assert result.exit_code == 0
    frames = ANSI.sub("", result.stdout)
    assert "non-improving: 1 of 2 (patience) · next eval must be below 0.4213" in frames
    assert "latest eval_loss 0.45 at step 60 (eval 5)" in frames
    assert "Ctrl-C stops waiting; the job keeps running." in frames
    assert progress_lines(result.stderr, job_id) == []  # no log lines on a terminal: the view says it
    # the final report follows the live view
    tail = frames[frames.rindex("Ctrl-C stops waiting"):]
    assert "★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2" in tail
    assert "Early stopping fired at step 72 (evaluation 6 of 10)" in tail


# --- the core: polls that fail, and the rule fed one evaluation at a time ------------------------

class Flaky:
    """A backend whose retrieve fails ``failures`` times in a row, from the second poll on."""

    def __init__(self, inner, failures: int, error=ApiError) -> None:
        self.inner, self.failures, self.error, self.calls = inner, failures, error, 0
        self.name = inner.name

    def retrieve(self, job_id, *, events=True):
        self.calls += 1
        if 2 <= self.calls < 2 + self.failures:
            raise self.error("HTTP 503 from the API (service unavailable)")
        return self.inner.retrieve(job_id, events=events)

    def metrics(self, job_id, query):
        return self.inner.metrics(job_id, query)


def test_transient_poll_errors_do_not_end_the_wait(ftctl, scenario_file, sim_time, ftctl_home):
    job_id = worked(ftctl, scenario_file)
    sim = Simulator(ftctl_home, speed=10, clock=sim_time.now)
    watch = follow.Watch(job_id, sent={"early_stopping_enabled": True})
    updates = list(follow.follow(Flaky(sim, failures=follow.POLL_RETRIES), watch, interval=1,
                                 clock=sim_time.environment.clock))
    retries = [u.retry_error for u in updates if u.retry_error]
    assert retries == ["HTTP 503 from the API (service unavailable)"] * follow.POLL_RETRIES
    assert updates[-1].ended and watch.job["status"] == "completed"
    assert [e.step for e in watch.evaluations] == [12, 24, 36, 48, 60, 72]
    assert watch.state.stopped and watch.state.best_i == 4
    sim.close()


def test_persistent_poll_errors_end_the_wait_and_not_found_at_once(ftctl, scenario_file, sim_time, ftctl_home):
    job_id = worked(ftctl, scenario_file)
    sim = Simulator(ftctl_home, speed=10, clock=sim_time.now)
    with pytest.raises(ApiError):
        list(follow.follow(Flaky(sim, failures=follow.POLL_RETRIES + 1), follow.Watch(job_id), interval=1,
                           clock=sim_time.environment.clock))
    flaky = Flaky(sim, failures=1, error=NotFound)
    with pytest.raises(NotFound):
        list(follow.follow(flaky, follow.Watch(job_id), interval=1, clock=sim_time.environment.clock))
    assert flaky.calls == 2
    sim.close()


def test_ctrl_c_stops_waiting_without_cancelling(ftctl_proc, scenario_file, tmp_path):
    job_id = ftctl_proc(*BASE, "--n-evals", "4", "-q", env={"FTCTL_SIM_SPEED": "0.5"}).stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "ftctl", "wait", job_id, "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FTCTL_SIM_SPEED": "0.5"})
    try:
        first = ""
        while job_id not in first:  # the wait has started: its first status line
            first = proc.stderr.readline()
            assert first, "ftctl wait ended before printing a status line"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "it was not cancelled" in err
    assert f"Resume with: ftctl wait {job_id}" in err and f"cancel with: ftctl cancel {job_id}" in err
    assert "Traceback" not in err
    status = json.loads(ftctl_proc("retrieve", job_id, "--json", env={"FTCTL_SIM_SPEED": "0.5"}).stdout)["status"]
    assert status in ("pending", "queued", "running")
