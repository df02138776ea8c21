"""report ID...: the CI view of one or more jobs, as Markdown (a GitHub step summary), JUnit XML
(a test-results view) or GitHub workflow commands (annotations)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands import completers
from ftctl.commands.common import Session, command
from ftctl.commands.options import FROM_FILES, JOB_IDS
from ftctl.output.render import Shown

FORMATS = ("markdown", "junit", "github")

REPORT_HELP = """Report how one or more jobs went, for CI: Markdown (a heading per job with its outcome, a
table of the facts, the eval_loss chart as a Mermaid xychart with the best and halt steps, the
explanation and the events; a comparison table for several jobs; always under 1 MiB, GitHub's
step-summary limit), JUnit XML (one test case per job: passing when it completed, failing when it
failed or was cancelled, or early-stopped with --fail-on-early-stop) or GitHub workflow commands
(::notice:: / ::warning:: / ::error:: annotations).

In GitHub Actions, `wait` and `create --wait` do this by themselves when the job ends: see the
README's "In CI".
"""


def register(app: typer.Typer) -> None:
    command(app, "report", output="report", help=REPORT_HELP)(report)


def report(
    session: Session,
    job_ids: JOB_IDS = None,
    format_: Annotated[str, typer.Option(
        "--format", metavar="markdown|junit|github", help="What to write.",
        autocompletion=completers.choices(*FORMATS))] = "markdown",
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="Write to FILE instead of stdout (- for stdout).")] = None,
    fail_on_early_stop: Annotated[bool, typer.Option(
        "--fail-on-early-stop", help="JUnit: an early-stopped job is a failing test case.")] = False,
    from_file: FROM_FILES = None,
) -> Shown:
    from ftctl.comparison import Compared
    from ftctl.errors import InvalidInput

    fmt = format_.lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"--format must be markdown, junit or github (got {format_!r})")
    target = _check_output(output)  # before anything is fetched
    runs = session.service.load_runs(list(job_ids or []), list(from_file or []), events=fmt == "markdown")
    items = [Compared(r.job_id, r.analysis, r.events) for r in runs]
    if fmt == "markdown":
        from ftctl.output.markdown import report as render
        text = render(items)
    elif fmt == "junit":
        from ftctl.output.junit import report as junit
        text = junit(items, fail_on_early_stop=fail_on_early_stop)
    else:
        from ftctl.output.annotations import report as github
        text = github(items)
    data = [{"job_id": c.job_id, "status": c.job.get("status"), "early_stopping": c.analysis.early_stopping()}
            for c in items]
    if target is not None:
        _write(target, text)
        session.term.note(f"Wrote {target}")
        return Shown(data, lambda term: None)
    return Shown(data, lambda term: term.out.write(text))


def _check_output(path: str | None):
    if path is None or path == "-":
        return None
    from pathlib import Path

    from ftctl.errors import InvalidInput

    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidInput(f"--output {path}: the directory {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise InvalidInput(f"--output {path} is a directory; give a file name")
    return target


def _write(target, text: str) -> None:
    """All or nothing: a report is written beside the target and moved into place."""
    import os
    import tempfile

    from ftctl.errors import InvalidInput

    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise InvalidInput(f"cannot write --output {target}: {exc.strerror or exc}") from None
