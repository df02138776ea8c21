"""wait ID, and --wait on create/retrieve: follow a job to its end, then show how it went.

Exit codes (cli-contract.md): 0 completed, 5 ended unsuccessfully (error, user_error, cancelled),
3 timed out (the job keeps running), 130 on Ctrl-C (the job keeps running; the message says how to
resume and how to cancel).
"""

from __future__ import annotations

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.jobs import INTERVAL, JOB_ID, TIMEOUT

DEFAULT_INTERVAL = {"sim": 1.0, "together": 5.0}

WAIT_HELP = """Wait for a job to end, showing its progress, then its eval_loss chart and why early stopping
fired or not.

On a terminal, a live view: steps, the latest eval_loss, the best so far, how many non-improving
evaluations patience still allows, and what the next evaluation must beat. Off a terminal, one
line on stderr per status change or evaluation. Exit 0 when the job completed, 5 when it ended in
error or was cancelled, 3 on --timeout, 130 on Ctrl-C. Ctrl-C never cancels the job.
"""


def register(app: typer.Typer) -> None:
    command(app, "wait", output="job", help=WAIT_HELP)(wait)


def wait(session: Session, job_id: JOB_ID, timeout: TIMEOUT = None, interval: INTERVAL = None) -> None:
    wait_for(session, job_id, timeout=timeout, interval=interval)


def durations(timeout: str | None, interval: str | None) -> tuple[float | None, float | None]:
    """Parse both before anything is sent: a bad value is exit 2 with nothing created."""
    from ftctl.errors import InvalidInput
    from ftctl.follow import parse_duration

    t = None if timeout is None else parse_duration(timeout, option="--timeout")
    i = None if interval is None else parse_duration(interval, option="--interval")
    if i is not None and i <= 0:
        raise InvalidInput(f"--interval must be more than 0 seconds (got {interval!r})")
    return t, i


def check_wait_options(wait: bool, timeout: str | None, interval: str | None) -> bool:
    """For --wait on create/retrieve: --timeout/--interval only with it, and well-formed."""
    if timeout is not None or interval is not None:
        if not wait:
            from ftctl.errors import InvalidInput

            raise InvalidInput("--timeout and --interval apply to waiting: add --wait")
        durations(timeout, interval)
    return wait


def wait_for(session: Session, job_id: str, *, timeout: str | None, interval: str | None,
             report: bool = True) -> None:
    """Follow ``job_id`` to its end; show the outcome (unless ``report`` is off); raise for exit 3/5."""
    from ftctl import jobs
    from ftctl.errors import WaitTimeout
    from ftctl.follow import Watch, check_outcome, follow
    from ftctl.output.live import View

    jobs.check_job_id(job_id)
    t, i = durations(timeout, interval)
    backend = session.backend
    if i is None:
        i = DEFAULT_INTERVAL.get(backend.name, 5.0)
    local = session.local
    watch = Watch(job_id, sent=local.sent(job_id))
    term = session.term
    try:
        with View(term, watch, interval=i) as view:
            for update in follow(backend, watch, interval=i, timeout=t):
                view.update(update)
    except KeyboardInterrupt:
        status = watch.job.get("status", "running")
        term.note(f"\nStopped waiting; job {job_id} is still {status} (it was not cancelled). "
                  f"Resume with: ftctl wait {job_id} · cancel with: ftctl cancel {job_id}")
        if session.json and watch.job:
            session.emit(watch.job)
        raise typer.Exit(130) from None
    except WaitTimeout:
        if session.json and watch.job:
            session.emit(watch.job)  # the state at the deadline, for scripts
        raise
    job = watch.job
    local.remember([job])
    if not report:
        pass  # create -q --wait: the id was the output; the exit code tells the rest
    elif session.json:
        session.emit(job)
    else:
        from ftctl.analysis import analyse
        from ftctl.wire import MetricsQuery
        from ftctl.output import report as run_report

        rows = backend.metrics(job_id, MetricsQuery())
        run_report.show(term, analyse(job, rows, sent=watch.sent), job=job, table=False)
    check_outcome(job)
