"""The option and argument types that several commands share, and their parsing: one place each,
so ``--timeout`` reads the same on ``create``, ``retrieve`` and ``wait``. No command module imports
another; they all import from here."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from ftctl.commands import completers

BEHAVIOUR = "Behaviour"

JOB_ID = Annotated[str, typer.Argument(metavar="JOB_ID", help="The job's id (ft-...).", show_default=False,
                                       autocompletion=completers.job_ids)]
OPTIONAL_JOB_ID = Annotated[Optional[str], JOB_ID.__metadata__[0]]

# --wait, --timeout and --interval: on create and retrieve, and on `wait`.
WAIT = Annotated[bool, typer.Option("--wait", help="Wait for the job to end, showing its progress; then its chart and "
                                    "why early stopping fired or not (exit 0 completed, 5 failed or cancelled, "
                                    "3 on --timeout).", rich_help_panel=BEHAVIOUR)]
TIMEOUT = Annotated[Optional[str], typer.Option(
    "--timeout", metavar="DURATION", show_default=False, rich_help_panel=BEHAVIOUR,
    help="Give up waiting after this long (exit 3; the job keeps running): seconds (90, 0.5) or with a unit "
         "(30s, 5m, 2h). Default: no limit.")]
INTERVAL = Annotated[Optional[str], typer.Option(
    "--interval", metavar="DURATION", show_default=False, rich_help_panel=BEHAVIOUR,
    help="Time between polls (default: 1s on the simulator, 5s on Together's API).")]

NO_CI_REPORT = Annotated[bool, typer.Option(
    "--no-ci-report", rich_help_panel=BEHAVIOUR,
    help="In GitHub Actions, do not append the report to $GITHUB_STEP_SUMMARY nor print annotations when the wait "
         "ends (env FTCTL_NO_CI_REPORT=1).")]

FROM_FILE = Annotated[Optional[str], typer.Option(
    "--from-file", metavar="FILE", show_default=False,
    help="Read a saved history instead of asking the API (no network): the output of "
         "`ftctl metrics ID --json`, or the API's {\"metrics\": [...]} (`ftctl metrics ID --raw`); - for stdin.")]

# Several jobs (report, compare, wait) and several saved histories (--from-file, repeatable).
JOB_IDS = Annotated[Optional[List[str]], typer.Argument(
    metavar="JOB_ID...", help="The jobs' ids (ft-...).", show_default=False, autocompletion=completers.job_ids)]
FROM_FILES = Annotated[Optional[List[str]], typer.Option(
    "--from-file", metavar="FILE", show_default=False,
    help="A saved history instead of a job (no network), repeatable: the output of `ftctl metrics ID --json`, "
         "or the API's {\"metrics\": [...]}; - for stdin.")]

YES = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (required when not at a "
                                                       "terminal).")]


def durations(timeout: str | None, interval: str | None) -> tuple[float | None, float | None]:
    """``--timeout`` and ``--interval`` in seconds, parsed before anything is sent: a bad value is
    exit 2 with nothing created."""
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
