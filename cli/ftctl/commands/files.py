"""files check PATH...: the vendor's data-file rules, offline, reported like a linter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, List

import typer

from ftctl.commands.common import Session, command
from ftctl.output.render import Shown

if TYPE_CHECKING:
    from ftctl.output.terminal import Terminal

CHECK_HELP = """Check fine-tuning data files before uploading them: offline, nothing is sent.

Every rule of Together's full client-side check (one JSON object per line, UTF-8, one format per
file, detected from its keys: conversational `messages`, instruction `prompt`/`completion`, general
`text`, preference `input`/`preferred_output`/`non_preferred_output`; roles and turns, at least one
assistant message, weights, images) and the server's rules that can be checked offline (tools and
tool calls, reasoning, sample weights). Files are streamed, so size does not matter.

Prints one verdict line per file, then each problem as PATH:LINE: message (rule), on stdout; a
summary on stderr. --json prints a list with one report per file.

Exit status: 0 when every file is valid, 2 when any is invalid, or a PATH is not a readable file
(then nothing is checked, and one error line says which).
"""


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="files", help="Fine-tuning data files: check them before upload.",
                        no_args_is_help=True)
    command(group, "check", output="file_report", help=CHECK_HELP)(check)
    app.add_typer(group)


def check(
    session: Session,
    paths: Annotated[List[str], typer.Argument(metavar="PATH...", help="JSONL (or Parquet) files to check.",
                                               show_default=False)],
    max_errors: Annotated[int, typer.Option(
        "--max-errors", metavar="N", min=1, help="Report at most N problems per file.")] = 100,
    purpose: Annotated[str, typer.Option(
        "--purpose", metavar="fine-tune|eval", help="eval files skip the format rules (any JSON object).")]
    = "fine-tune",
) -> None:
    from ftctl.errors import InvalidInput

    if purpose not in ("fine-tune", "eval"):
        raise InvalidInput(f"--purpose must be fine-tune or eval (got {purpose!r})")
    import os

    for path in paths:  # a wrong path is a usage error: said at once, before any file is read
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise InvalidInput(f"File not found or path is not a regular file: {path}"
                               if not os.path.isfile(path) else f"Cannot read {path}: permission denied")
    from ftctl.datasets import check_path

    reports = [check_path(path, max_errors=max_errors, purpose=purpose) for path in paths]

    def human(term: Terminal) -> None:
        from ftctl.output import file_reports

        file_reports.show(term, reports, max_errors)

    session.render(Shown([r.to_json() for r in reports], human))
    if not all(r.ok for r in reports):
        raise typer.Exit(2)  # after the output: the problems are the data of this command
