"""checkpoints ID: a job's saved checkpoints; the final one is the promoted model."""

from __future__ import annotations

import typer

from ftctl.commands.common import Session, command, rows_view
from ftctl.commands.options import JOB_ID
from ftctl.output.render import Shown


def register(app: typer.Typer) -> None:
    command(app, "checkpoints", output="checkpoint",
            help="List a job's saved checkpoints; the final one is the promoted model.")(checkpoints)


def checkpoints(session: Session, job_id: JOB_ID) -> Shown:
    return rows_view(session.service.checkpoints(job_id), "checkpoints", job_id)
