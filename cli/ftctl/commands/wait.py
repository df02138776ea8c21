"""wait ID: follow a job to its end, then show how it went (``commands.waiting``)."""

from __future__ import annotations

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import INTERVAL, JOB_IDS, NO_CI_REPORT, TIMEOUT
from ftctl.commands.waiting import wait_for, wait_for_all

WAIT_HELP = """Wait for one or more jobs to end, showing their progress; for one job, then its eval_loss chart and why early stopping fired or not; for several, one line each.

On a terminal, a live view: steps, the latest eval_loss, the best so far, how many non-improving evaluations patience still allows, and what the next evaluation must beat (several jobs: one block, a few lines each). Off a terminal, one line on stderr per status change or evaluation, prefixed by the job id. Exit 0 when every job completed, 5 when any ended in error or was cancelled, else 3 when any was still running at --timeout; 130 on Ctrl-C. Ctrl-C never cancels a job.

In GitHub Actions the report is appended to $GITHUB_STEP_SUMMARY and the annotations printed when the wait ends (see `ftctl report`); --no-ci-report turns that off.
"""


def register(app: typer.Typer) -> None:
    command(app, "wait", output="job", help=WAIT_HELP)(wait)


def wait(session: Session, job_ids: JOB_IDS = None, timeout: TIMEOUT = None, interval: INTERVAL = None,
         no_ci_report: NO_CI_REPORT = False) -> None:
    if not job_ids:
        from ftctl.errors import InvalidInput

        raise InvalidInput("wait needs one or more job ids (ft-...)")
    if len(set(job_ids)) == 1:
        wait_for(session, job_ids[0], timeout=timeout, interval=interval, ci_report=not no_ci_report)
    else:
        wait_for_all(session, job_ids, timeout=timeout, interval=interval, ci_report=not no_ci_report)
