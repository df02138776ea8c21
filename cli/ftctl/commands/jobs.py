"""retrieve, list, cancel: one job, all jobs, and stopping one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands.common import Session, command, job_view, rows_view
from ftctl.commands.options import INTERVAL, JOB_ID, NO_CI_REPORT, TIMEOUT, WAIT, YES, check_wait_options
from ftctl.commands.waiting import wait_for
from ftctl.output.render import Shown


def register(app: typer.Typer) -> None:
    command(app, "retrieve", output="job", help="Show a job: status, progress and, for an early-stopped job, "
                                  "the best step, the halt step and the refund.")(retrieve)
    command(app, "list", output="job", help="List fine-tuning jobs, newest first.")(list_)
    command(app, "cancel", output="job", help="Cancel a pending, queued or running job.")(cancel)


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
    from ftctl import jobs
    from ftctl.errors import InvalidInput

    jobs.check_job_id(job_id)
    if not yes:
        if not session.term.interactive:
            raise InvalidInput(f"cancelling {job_id} needs --yes when stdin and stdout are not both terminals "
                               "(ftctl never prompts in scripts)")
        if not typer.confirm(f"Cancel {job_id}? Completed steps are still billed.", default=False,
                             err=True):
            session.term.note("Not cancelled; the job keeps running.")
            return None
    service = session.service
    return job_view(service.cancel(job_id), service.sent(job_id))
