"""retrieve, list, cancel: one job, all jobs, and stopping one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands.common import command
from ftctl.commands.session import Session, job_view, rows_view
from ftctl.commands.options import INTERVAL, JOB_ID, NO_CI_REPORT, TIMEOUT, WAIT, YES, check_wait_options
from ftctl.commands.waiting import wait_for
from ftctl.output.render import Shown


def register(app: typer.Typer) -> None:
    command(app, "retrieve", output="job", help="Show a job: status, progress and, for an early-stopped job, "
                                  "the best step, the halt step and the refund.")(retrieve)
    command(app, "list", output="job", help="List fine-tuning jobs, newest first.")(list_)
    command(app, "cancel", output="job", help="Cancel a pending, queued or running job. A job that has already "
            "ended (or is being cancelled) is left as it is: one line says so, exit 0.")(cancel)


def retrieve(session: Session, job_id: JOB_ID, wait: WAIT = False, timeout: TIMEOUT = None,
             interval: INTERVAL = None, no_ci_report: NO_CI_REPORT = False) -> Shown | None:
    if check_wait_options(wait, timeout, interval):
        wait_for(session, job_id, timeout=timeout, interval=interval, ci_report=not no_ci_report)
        return None
    service = session.service
    return job_view(service.retrieve(job_id), service.sent(job_id))


def list_(session: Session,
          limit: Annotated[Optional[int], typer.Option(help="Show only the newest N jobs.", min=1,
                                                       show_default=False)] = None) -> Shown:
    return rows_view(session.service.list(limit=limit), "job_list")


def cancel(session: Session, job_id: JOB_ID, yes: YES = False) -> Shown | None:
    """The job is read first: one that has ended (or is already being cancelled) gets one line
    saying so and exit 0, with no question asked and nothing sent; only a job that can still be
    cancelled is confirmed and cancelled."""
    from ftctl.errors import ApiError, InvalidInput

    job = session.service.retrieve(job_id)
    if job.get("status") in _NOTHING_TO_CANCEL:
        return _already(session, job)
    if not yes:
        if not session.term.interactive:
            raise InvalidInput(f"cancelling {job_id} needs --yes when stdin and stdout are not both terminals "
                               "(ftctl never prompts in scripts)")
        if not typer.confirm(f"Cancel {job_id} ({job.get('status')}, step {job.get('steps_completed', 0)} of "
                             f"{job.get('total_steps', '?')})? Completed steps are still billed.", default=False,
                             err=True):
            session.term.note("Not cancelled; the job keeps running.")
            return None
    try:
        return job_view(session.service.cancel(job_id), session.service.sent(job_id))
    except ApiError:
        job = session.service.retrieve(job_id)  # it may have ended since it was read
        if job.get("status") in _NOTHING_TO_CANCEL:
            return _already(session, job)
        raise


_NOTHING_TO_CANCEL = ("completed", "error", "user_error", "cancelled", "cancel_requested")


def _already(session: Session, job: dict) -> Shown:
    """An ended job: one line on stderr (and the job itself under --json); exit 0 either way."""
    status = job.get("status")
    session.term.note(f"{job['id']} is already being cancelled ({status}); nothing to do."
                      if status == "cancel_requested" else f"{job['id']} has already ended ({status}); nothing to cancel.")
    return Shown(job, lambda term: None)
