"""wait ID: follow a job to its end, then show how it went (``commands.waiting``)."""

from __future__ import annotations

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import INTERVAL, JOB_ID, TIMEOUT
from ftctl.commands.waiting import wait_for

WAIT_HELP = """Wait for a job to end, showing its progress, then its eval_loss chart and why early stopping fired or not.

On a terminal, a live view: steps, the latest eval_loss, the best so far, how many non-improving evaluations patience still allows, and what the next evaluation must beat. Off a terminal, one line on stderr per status change or evaluation. Exit 0 when the job completed, 5 when it ended in error or was cancelled, 3 on --timeout, 130 on Ctrl-C. Ctrl-C never cancels the job.
"""


def register(app: typer.Typer) -> None:
    command(app, "wait", output="job", help=WAIT_HELP)(wait)


def wait(session: Session, job_id: JOB_ID, timeout: TIMEOUT = None, interval: INTERVAL = None) -> None:
    wait_for(session, job_id, timeout=timeout, interval=interval)
