"""checkpoints ID: a job's saved checkpoints, their download ids, the promoted one and why each exists."""

from __future__ import annotations

import typer

from ftctl.commands.common import command
from ftctl.commands.session import Session, rows_view
from ftctl.commands.options import JOB_ID
from ftctl.output.render import Shown


def register(app: typer.Typer) -> None:
    command(app, "checkpoints", output="checkpoint",
            help="List a job's saved checkpoints with their download ids; marks the promoted one and says why "
                 "each was saved.")(checkpoints)


def checkpoints(session: Session, job_id: JOB_ID) -> Shown:
    return rows_view(session.service.checkpoints(job_id), "checkpoints", job_id)
