"""What ``wait``, ``create --wait`` and ``retrieve --wait`` share: follow a job to its end through
the service, with the live view, then show how it went.

Exit codes (docs/contract.md): 0 completed, 5 ended unsuccessfully (error, user_error, cancelled),
3 timed out (the job keeps running), 130 on Ctrl-C (the job keeps running; the message says how to
resume and how to cancel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ftctl.commands.options import durations

if TYPE_CHECKING:
    from ftctl.commands.common import Session


def wait_for(session: Session, job_id: str, *, timeout: str | None, interval: str | None,
             report: bool = True) -> None:
    """Follow ``job_id`` to its end; show the outcome (unless ``report`` is off); raise for exit 3/5."""
    from ftctl.errors import WaitTimeout
    from ftctl.follow import check_outcome
    from ftctl.output.live import View

    service = session.service
    watch = service.watch(job_id)
    t, i = durations(timeout, interval)
    i = service.poll_interval(i)
    term = session.term
    try:
        with View(term, watch, interval=i) as view:
            job = service.wait(watch, interval=i, timeout=t, on_update=view.update)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (ftctl.errors.Signalled)
        status = watch.job.get("status", "running")
        term.note(f"\nStopped waiting; job {job_id} is still {status} (it was not cancelled). "
                  f"Resume with: ftctl wait {job_id} · cancel with: ftctl cancel {job_id}")
        if session.json and watch.job:
            session.emit(watch.job)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except WaitTimeout:
        if session.json and watch.job:
            session.emit(watch.job)  # the state at the deadline, for scripts
        raise
    if report:  # create -q --wait: the id was the output; the exit code tells the rest
        run = None if session.json else service.run(job_id, job=job)
        session.render(_outcome(job, run))
    check_outcome(job)


def _outcome(job, run):
    from ftctl.output.render import Shown

    def human(term):
        from ftctl.output import report

        report.show(term, run.analysis, job=job, table=False)

    return Shown(job, human)
