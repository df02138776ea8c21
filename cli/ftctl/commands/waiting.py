"""What ``wait``, ``create --wait`` and ``retrieve --wait`` share: follow one job (or several) to
its end through the service, with the live view, then show how it went; in GitHub Actions, also
the step summary and the annotations (``commands.ci``).

Exit codes (docs/contract.md): 0 completed, 5 ended unsuccessfully (error, user_error, cancelled),
3 timed out (the job keeps running), 130 on Ctrl-C (the job keeps running; the message says how to
resume and how to cancel). Several jobs: the worst outcome wins: any job failed or cancelled -> 5,
else any still running at the timeout -> 3, else 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ftctl.commands import ci
from ftctl.commands.options import durations

if TYPE_CHECKING:
    from ftctl.commands.common import Session


def wait_for(session: Session, job_id: str, *, timeout: str | None, interval: str | None,
             report: bool = True, ci_report: bool = True) -> None:
    """Follow ``job_id`` to its end; show the outcome (unless ``report`` is off); raise for exit 3/5.
    ``report`` off (create -q --wait): the id was the output; the exit code tells the rest."""
    from ftctl.errors import WaitTimeout
    from ftctl.follow import check_outcome
    from ftctl.output.live import View

    service = session.service
    watch = service.watch(job_id)
    t, i = durations(timeout, interval)
    i = service.poll_interval(i)
    term = session.term
    data_out = session.json or not report
    try:
        with View(term, watch, interval=i) as view:
            job = service.wait(watch, interval=i, timeout=t, on_update=view.update)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (ftctl.errors.Signalled)
        _interrupted(session, [watch], exc)
    except WaitTimeout:
        if session.json and watch.job:
            session.emit(watch.job)  # the state at the deadline, for scripts
        ci.after_wait(session, [job_id], off=not ci_report, stdout_is_data=data_out)
        raise
    if report:
        run = None if session.json else service.run(job_id, job=job)
        session.render(_outcome(job, run))
    ci.after_wait(session, [job_id], off=not ci_report, stdout_is_data=data_out)
    check_outcome(job)


def wait_for_all(session: Session, job_ids: list[str], *, timeout: str | None, interval: str | None,
                 ci_report: bool = True) -> None:
    """Follow several jobs at once (one live block on a terminal, a line per change otherwise, each
    prefixed by its job id); then one line per job; raise for the worst outcome."""
    from ftctl.errors import JobFailed
    from ftctl.follow import timed_out
    from ftctl.output.live import MultiView
    from ftctl.wire import FAILED_STATUSES

    service = session.service
    watches = [service.watch(job_id) for job_id in dict.fromkeys(job_ids)]  # each id checked, once
    t, i = durations(timeout, interval)
    i = service.poll_interval(i)
    try:
        with MultiView(session.term, watches, interval=i) as view:
            running = service.wait_all(watches, interval=i, timeout=t, on_update=view.update)
    except KeyboardInterrupt:
        _interrupted(session, watches)
    ids = [w.job_id for w in watches]
    jobs = [w.job for w in watches]
    session.render(_outcomes(session, jobs))
    ci.after_wait(session, ids, off=not ci_report, stdout_is_data=session.json)
    failed = [j for j in jobs if j.get("status") in FAILED_STATUSES]
    if failed:
        raise JobFailed(f"{len(failed)} of {len(jobs)} jobs ended unsuccessfully: "
                        + ", ".join(f"{j.get('id')} ({j.get('status')})" for j in failed)
                        + (f"; {len(running)} still running" if running else ""))
    if running:
        raise timed_out(running, t)


def _interrupted(session: Session, watches: list, exc: KeyboardInterrupt) -> None:
    ids = " ".join(w.job_id for w in watches)
    if len(watches) == 1:
        status = watches[0].job.get("status", "running")
        session.term.note(f"\nStopped waiting; job {ids} is still {status} (it was not cancelled). "
                          f"Resume with: ftctl wait {ids} · cancel with: ftctl cancel {ids}")
    else:
        states = ", ".join(f"{w.job_id} {w.job.get('status', 'running')}" for w in watches)
        session.term.note(f"\nStopped waiting; the jobs are still running ({states}; none was cancelled). "
                          f"Resume with: ftctl wait {ids} · cancel one with: ftctl cancel ID")
    if session.json and all(w.job for w in watches):
        session.emit(watches[0].job if len(watches) == 1 else [w.job for w in watches])
    raise typer.Exit(getattr(exc, "exit_code", 130)) from None  # 143/129 for SIGTERM/SIGHUP


def _outcome(job, run):
    from ftctl.output.render import Shown

    def human(term):
        from ftctl.output import report

        report.show(term, run.analysis, job=job, table=False)

    return Shown(job, human)


def _outcomes(session: Session, jobs: list[dict]):
    """Several jobs at their end: the list under --json, else one sentence each."""
    from ftctl.output.render import Shown

    def human(term):
        from ftctl.comparison import Compared
        from ftctl.output import outcome

        for job in jobs:
            run = session.service.run(job["id"], job=job)
            term.write(f"{job['id']}  {outcome.sentence(Compared(job['id'], run.analysis))}")

    return Shown(jobs, human)
