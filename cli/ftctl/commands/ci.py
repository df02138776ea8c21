"""In GitHub Actions, without being asked: when a wait ends (completed, failed or timed out),
append the Markdown report to ``$GITHUB_STEP_SUMMARY`` and, under ``GITHUB_ACTIONS=true``, print
the annotations (``ftctl report --format github``). ``--no-ci-report`` or ``FTCTL_NO_CI_REPORT=1``
turns both off. Shared by ``wait``, ``create --wait`` and ``retrieve --wait`` (``commands.waiting``).

Where the annotations go: GitHub reads workflow commands only from a step's stdout, so they are
printed there, after the human report. When stdout is data a script captures (``--json``,
``--fields``, ``create -q``), they are not printed (they would corrupt it, and a captured line
never reaches the runner anyway): a note on stderr says to run ``ftctl report ID --format github``,
as ``examples/ci.sh`` does. A CI report never changes the wait's exit code: a failure to build or
write it is a warning.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftctl.commands.common import Session

ENV_OFF = "FTCTL_NO_CI_REPORT"
SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
MIN_ROOM = 4096  # bytes: less room than this left in a step summary, and nothing is appended


def wanted(off: bool) -> tuple[str | None, bool]:
    """(the step-summary file or None, print annotations?)."""
    if off or os.environ.get(ENV_OFF, "").strip().lower() not in ("", "0", "false", "no"):
        return None, False
    return os.environ.get(SUMMARY_ENV) or None, os.environ.get("GITHUB_ACTIONS") == "true"


def after_wait(session: Session, job_ids: list[str], *, off: bool, stdout_is_data: bool) -> None:
    summary, annotate = wanted(off)
    if not summary and not annotate:
        return
    from ftctl.comparison import Compared
    from ftctl.errors import FtctlError

    try:
        runs = session.service.load_runs(job_ids, events=summary is not None)
    except FtctlError as exc:
        session.term.warn(f"no CI report: {exc.message}")
        return
    items = [Compared(r.job_id, r.analysis, r.events) for r in runs]
    if summary:
        _append_summary(session, summary, items)
    if annotate:
        if stdout_is_data:
            session.term.note("GitHub annotations not printed: stdout carries data here; "
                              f"print them with: ftctl report {' '.join(job_ids)} --format github")
        else:
            from ftctl.output.annotations import report

            session.term.out.write(report(items))
            session.term.out.flush()


def _append_summary(session: Session, path: str, items: list) -> None:
    from ftctl.output.markdown import LIMIT, report

    try:
        used = os.path.getsize(path) if os.path.exists(path) else 0
        room = LIMIT - used
        if room < MIN_ROOM:
            session.term.warn(f"no step summary: {path} already holds {used} bytes (GitHub's limit is 1 MiB)")
            return
        text = report(items, limit=room - 2)
        with open(path, "a", encoding="utf-8") as f:
            f.write(("\n" if used else "") + text)
    except OSError as exc:
        session.term.warn(f"could not write the step summary {path}: {exc.strerror or exc}")
