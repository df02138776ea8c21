"""events ID: a job's event log, with its early_stopped and refund entries."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from ftctl.commands.common import command
from ftctl.commands.session import Session, rows_view
from ftctl.commands.options import JOB_ID
from ftctl.output.render import Shown


def register(app: typer.Typer) -> None:
    command(app, "events", output="event",
            help="Show a job's event log, with its early_stopped and refund entries.")(events)


def events(session: Session, job_id: JOB_ID,
           type_: Annotated[Optional[List[str]], typer.Option(
               "--type", metavar="TYPE", help="Only events of this type (repeatable), e.g. early_stopped.",
               show_default=False)] = None) -> Shown:
    log = session.service.event_log(job_id, types=type_)
    if log.unmatched:  # an empty answer is right, but it should not look like a typo's
        session.term.note(f"Note: no {', '.join(log.unmatched)} event in the log of {job_id}; its types: "
                          f"{', '.join(log.types_present) or 'none yet'}.")
    return rows_view(log.rows, "events")
