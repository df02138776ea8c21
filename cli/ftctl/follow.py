"""Waiting for a job: poll the backend and yield what changed, until the job ends or time runs out.

The core of ``ftctl wait`` and ``--wait``: it never prints. Each poll retrieves the job and, when
its progress moved, the new evaluation rows (only the steps not seen yet); new evaluations go
through the early-stopping rule one at a time, as the trainer does, so the live view can say how
many non-improving evaluations are left and what the next one must beat. A failed poll is retried
a few times before the error ends the wait (a brief network or server hiccup must not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ftctl import early_stopping as es
from ftctl.environment import Clock
from ftctl.analysis import EVAL_KEY, STEP_KEY, early_stopping_on, eval_points
from ftctl.errors import ApiError, JobFailed, WaitTimeout
from ftctl.wire import FAILED_STATUSES, TERMINAL_STATUSES, MetricsQuery, failure_reason

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
    from ftctl.backend import Backend

POLL_RETRIES = 3  # consecutive failed polls tolerated before the error ends the wait


@dataclass(frozen=True)
class Evaluation:
    eval: int
    step: int
    eval_loss: float
    state: es.State  # the rule's state after this evaluation


@dataclass
class Update:
    """One change seen while waiting: a new status, new evaluations, or a failed poll."""

    job: dict[str, Any]
    status_changed: bool = False
    new_evaluations: list[Evaluation] = field(default_factory=list)
    progressed: bool = False  # steps moved (a live view redraws; a log line is not needed)
    retry_error: str | None = None  # a poll failed and will be retried

    @property
    def ended(self) -> bool:
        return self.job.get("status") in TERMINAL_STATUSES


@dataclass
class Watch:
    """What has been seen of one job so far."""

    job_id: str
    sent: dict[str, Any] | None = None  # the settings ftctl sent at create, if it created the job
    job: dict[str, Any] = field(default_factory=dict)
    evaluations: list[Evaluation] = field(default_factory=list)
    state: es.State = es.INITIAL

    @property
    def enabled(self) -> bool | None:
        return early_stopping_on(self.job, self.sent)

    @property
    def settings(self) -> es.Settings:
        sent = self.sent or {}
        return es.settings_from(sent.get("early_stopping_patience"), sent.get("early_stopping_min_delta"),
                                sent.get("early_stopping_warmup_evals"))

    def analysis(self) -> Analysis:
        """What has been seen so far, read through the rule as ``metrics`` reads it."""
        from ftctl.analysis import analyse

        rows = [{STEP_KEY: e.step, EVAL_KEY: e.eval_loss} for e in self.evaluations]
        return analyse(self.job, rows, sent=self.sent)

    @property
    def threshold(self):
        """What the next evaluation must be strictly below to count (None: anything finite)."""
        return es.improvement_threshold(self.state, self.settings) if self.state.best_value is not None else None

    def _absorb(self, rows: list[dict[str, Any]]) -> list[Evaluation]:
        seen = self.evaluations[-1].step if self.evaluations else -1
        new = []
        for step, value, _missing in eval_points(rows):
            if step <= seen:
                continue
            self.state = es.advance(self.state, value, self.settings) if not self.state.stopped else self.state
            evaluation = Evaluation(len(self.evaluations) + 1, step, value, self.state)
            self.evaluations.append(evaluation)
            new.append(evaluation)
            seen = step
        return new


class Poller:
    """One job's polls: what changed since the last look, with a few failed polls tolerated."""

    def __init__(self, backend: Backend, watch: Watch, *, retries: int = POLL_RETRIES) -> None:
        self.backend, self.watch, self.retries = backend, watch, retries
        self.first, self.failures = True, 0

    @property
    def ended(self) -> bool:
        return not self.first and self.watch.job.get("status") in TERMINAL_STATUSES

    def poll(self) -> Update | None:
        """Look once; an ``Update`` when something changed (or a poll failed and will be retried)."""
        backend, watch = self.backend, self.watch
        try:
            job = backend.retrieve(watch.job_id, events=False)
            if job.get("status") in FAILED_STATUSES and not job.get("events"):
                job = backend.retrieve(watch.job_id)  # the event log says why it failed
            moved = _moved(watch.job, job)
            rows = _new_rows(backend, watch) if moved or self.first or job.get("status") in TERMINAL_STATUSES \
                else []
        except ApiError as exc:  # NotFound/AuthError are not ApiError: they end the wait at once
            self.failures += 1
            if self.failures > self.retries:
                raise
            return Update(watch.job or {"id": watch.job_id}, retry_error=exc.message)
        self.failures = 0
        status_changed = job.get("status") != watch.job.get("status")
        watch.job = job
        new = watch._absorb(rows)
        first, self.first = self.first, False
        if first or status_changed or new or moved:
            return Update(job, status_changed=status_changed or first, new_evaluations=new, progressed=moved)
        return None


def follow(backend: Backend, watch: Watch, *, interval: float, timeout: float | None = None,
           retries: int = POLL_RETRIES, clock: Clock | None = None) -> Iterator[Update]:
    """Yield an ``Update`` for every change until the job ends (the last update has ``ended``).

    Raises ``WaitTimeout`` when ``timeout`` seconds pass first (on ``clock``); the job keeps running.
    """
    for _, update in follow_many(backend, [watch], interval=interval, timeout=timeout, retries=retries,
                                 clock=clock):
        yield update
    if watch.job.get("status") not in TERMINAL_STATUSES:
        raise _timed_out(watch, timeout)


def follow_many(backend: Backend, watches: list[Watch], *, interval: float, timeout: float | None = None,
                retries: int = POLL_RETRIES, clock: Clock | None = None) -> Iterator[tuple[Watch, Update]]:
    """Poll every job once a round, yielding ``(watch, update)`` for each change, until all have
    ended or ``timeout`` seconds pass (on ``clock``); then simply stop: the caller sees which jobs
    have not ended (they keep running)."""
    clock = clock or Clock()
    deadline = None if timeout is None else clock.monotonic() + timeout
    pollers = [Poller(backend, w, retries=retries) for w in watches]
    while True:
        for poller in pollers:
            if not poller.ended:
                update = poller.poll()
                if update is not None:
                    yield poller.watch, update
        if all(p.ended for p in pollers):
            return
        now = clock.monotonic()
        if deadline is not None and now >= deadline:
            return
        # Sleep at most up to the deadline, then take one last look at the jobs.
        clock.sleep(interval if deadline is None else min(interval, deadline - now))


def _moved(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return any(before.get(k) != after.get(k) for k in ("steps_completed", "evals_completed"))


def _new_rows(backend: Backend, watch: Watch) -> list[dict[str, Any]]:
    """Eval rows after the last one seen; training rows are thinned to one per poll."""
    start = watch.evaluations[-1].step + 1 if watch.evaluations else None
    rows = backend.metrics(watch.job_id, MetricsQuery(global_step_from=start, resolution=1))
    return [r for r in rows if EVAL_KEY in r]


def timed_out(watches: list[Watch], timeout: float | None) -> WaitTimeout:
    """The error for a wait whose deadline passed with these jobs still running."""
    if len(watches) == 1:
        return _timed_out(watches[0], timeout)
    ids = " ".join(w.job_id for w in watches)
    return WaitTimeout(f"timed out after {format_duration(timeout or 0)}: {len(watches)} jobs are still running "
                       f"({ids})", hint=f"keep waiting with: ftctl wait {ids}")


def _timed_out(watch: Watch, timeout: float | None) -> WaitTimeout:
    job = watch.job
    done, total = job.get("steps_completed"), job.get("total_steps")
    where = f", at step {done} of {total}" if isinstance(done, int) and isinstance(total, int) else ""
    return WaitTimeout(f"timed out after {format_duration(timeout or 0)}: job {watch.job_id} is still "
                       f"{job.get('status', 'running')}{where}",
                       hint=f"keep waiting with: ftctl wait {watch.job_id}")


def check_outcome(job: dict[str, Any]) -> None:
    """Raise ``JobFailed`` (exit 5) when the job ended unsuccessfully."""
    status = job.get("status")
    if status in FAILED_STATUSES:
        reason = failure_reason(job)
        raise JobFailed(f"job {job.get('id')} ended {status}" + (f": {reason}" if reason else ""))


# --- durations: `--timeout 5m`, `--interval 0.5` -------------------------------------------------

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float, *, option: str = "duration") -> float:
    """Seconds (``90``, ``0.5``) or a number with a unit (``30s``, ``5m``, ``2h``)."""
    from ftctl.errors import InvalidInput

    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        raw = text.strip().lower()
        factor = _UNITS.get(raw[-1:], None)
        number = raw[:-1] if factor else raw
        try:
            seconds = float(number) * (factor or 1.0)
        except ValueError:
            seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput(f"{option} must be a duration: seconds (90, 0.5) or a number with a unit s, m "
                           f"or h (30s, 5m, 2h) (got {text!r})")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
