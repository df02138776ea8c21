"""``ftctl files ...``: check data files offline, and upload, list, retrieve, delete and download
the files jobs train on. Parse, call ``ftctl.datasets`` / ``ftctl.files`` / the backend, return a
``Shown`` drawn by ``output.file_reports`` / ``output.file_views``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import YES
from ftctl.output.render import Shown

if TYPE_CHECKING:
    from ftctl.output.terminal import Terminal

FILE_ID = Annotated[str, typer.Argument(metavar="FILE_ID", help="The file's id (file-...).", show_default=False)]
PROGRESS_MIN_BYTES = 8 << 20  # smaller files upload faster than a bar can draw


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
    files_app = typer.Typer(name="files", help="Fine-tuning data files: check them offline, upload, list, "
                            "inspect, download and delete them.", no_args_is_help=True)
    command(files_app, "check", output="file_report", help=CHECK_HELP)(check)
    command(files_app, "upload", output="file", help="Check a dataset offline, then upload it; prints its "
            "file id. An identical file already uploaded is not sent again: its id is printed.")(upload)
    command(files_app, "list", output="file", help="List uploaded files, newest first.")(list_)
    command(files_app, "retrieve", output="file", help="Show a file: size, purpose, and whether the "
            "server found it valid (with its report in words when not).")(retrieve)
    command(files_app, "delete", output="file_deleted", help="Delete an uploaded file.")(delete)
    command(files_app, "content", output=(), help="Download a file's content (to stdout, or -o FILE).")(content)
    app.add_typer(files_app)


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


def upload(session: Session,
           path: Annotated[Path, typer.Argument(metavar="PATH", help="A .jsonl (or .parquet/.csv) dataset.",
                                                show_default=False)],
           purpose: Annotated[str, typer.Option(help="fine-tune or eval.")] = "fine-tune",
           no_check: Annotated[bool, typer.Option("--no-check", help="Skip the offline check (the server "
                                                  "still validates the file).")] = False,
           quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the file id.")] = False) -> Shown:
    from ftctl import files

    if purpose not in files.PURPOSES:
        from ftctl.errors import InvalidInput

        raise InvalidInput(f"--purpose must be fine-tune or eval (got {purpose!r})")
    size = path.stat().st_size if path.is_file() else 0
    state = files.Upload(total=size)
    bar = _progress(session, path, size) if not quiet else None
    if bar is not None:
        state.on_progress = bar.update
    try:
        with bar or _nothing():
            done = files.upload(session.backend, path, purpose=purpose, check=not no_check, upload=state)
    except KeyboardInterrupt:
        session.term.note(f"\nUpload of {path} interrupted {state.left_behind(session.config.backend)}.")
        raise
    file = done.file
    if not quiet and not session.json:
        if done.existed:
            session.term.note(f"Note: {path.name} is identical to {file['id']} ({file.get('filename')}), "
                              "already uploaded; nothing was sent. Delete that file first to upload it anew.")
        else:
            status = file.get("processing_status") or "not validated"
            session.term.note(f"Uploaded {path.name} ({file.get('bytes')} bytes) as {file['id']}; processing: "
                              f"{status}. See: ftctl files retrieve {file['id']}")
    return Shown(file, lambda term: term.write(file["id"]))


def list_(session: Session) -> Shown:
    rows = session.backend.list_files()
    return Shown(rows, lambda term: _views().file_list(term, rows))


def retrieve(session: Session, file_id: FILE_ID) -> Shown:
    from ftctl.files import check_file_id

    file = session.backend.retrieve_file(check_file_id(file_id))
    return Shown(file, lambda term: _views().file(term, file))


def delete(session: Session, file_id: FILE_ID, yes: YES = False) -> Shown | None:
    from ftctl.errors import InvalidInput
    from ftctl.files import check_file_id

    check_file_id(file_id)
    if not yes:
        if not session.term.interactive:
            raise InvalidInput(f"deleting {file_id} needs --yes when stdin and stdout are not both terminals "
                               "(ftctl never prompts in scripts)")
        if not typer.confirm(f"Delete {file_id}? Jobs already created keep their data.", default=False, err=True):
            session.term.note("Not deleted.")
            return None
    result = session.backend.delete_file(file_id)
    if not session.json:
        session.term.note(f"Deleted {file_id}.")
    return Shown(result, lambda term: term.write(file_id))  # the data: what was deleted


def content(session: Session, file_id: FILE_ID,
            output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                                           help="Write to FILE instead of stdout.")] = None) -> Shown | None:
    import os
    import sys

    from ftctl.files import check_file_id

    check_file_id(file_id)
    if output is None and session.json:  # as tg does: the text, or base64 when it is not UTF-8
        import base64
        import io

        buffer = io.BytesIO()
        session.backend.file_content(file_id, buffer)
        data = buffer.getvalue()
        try:
            return Shown({"id": file_id, "content": data.decode("utf-8")})
        except UnicodeDecodeError:
            return Shown({"id": file_id, "content_base64": base64.b64encode(data).decode("ascii")})
    if output is None:
        session.term.out.flush()
        raw = getattr(session.term.out, "buffer", None) or sys.stdout.buffer  # the bytes, as they are
        session.backend.file_content(file_id, raw)
        raw.flush()
        return None
    if output.is_dir():
        from ftctl.errors import InvalidInput

        raise InvalidInput(f"-o {output} is a directory: give a file name")
    tmp = output.with_name(f".{output.name}.part")
    try:
        with open(tmp, "wb") as out:
            written = session.backend.file_content(file_id, out)
        os.replace(tmp, output)  # an interrupted download leaves no half file under the real name
    finally:
        tmp.unlink(missing_ok=True)
    if not session.json:
        session.term.note(f"Wrote {written} bytes to {output}")
    return Shown({"id": file_id, "path": str(output.resolve()), "bytes": written}, lambda term: None)


def _progress(session: Session, path: Path, size: int):
    """A transient Rich bar on stderr, for large files on a terminal only."""
    err = session.term.err
    if size < PROGRESS_MIN_BYTES or not (hasattr(err, "isatty") and err.isatty()):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    progress = Progress("Uploading " + path.name, BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        console=Console(file=err), transient=True)

    class Bar:
        def __enter__(self):
            progress.start()
            self.task = progress.add_task("upload", total=size)
            return self

        def __exit__(self, *exc):
            progress.stop()
            return False

        def update(self, done: int, total: int) -> None:
            progress.update(self.task, completed=done)

    return Bar()


def _views() -> Any:
    from ftctl.output import file_views

    return file_views


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
