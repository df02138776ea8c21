"""Operations on files, for the commands: the local check before anything is sent, the upload,
waiting for the server's processing, and ``create -t ./train.jsonl`` turning local paths into
file ids. Returns data; never prints (progress and notes go through callbacks).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ftctl.backend import Upload
from ftctl.errors import ApiError, InvalidInput, WaitTimeout

__all__ = ["Upload", "upload", "wait_processed", "check_local", "check_file_id", "upload_for_create"]

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.wire import Wire

PURPOSES = ("fine-tune", "eval")
PROCESSED = ("COMPLETED", "INVALID_FORMAT", "FAILED")
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass
class Uploaded:
    file: Wire
    existed: bool  # identical bytes were already uploaded: ``file`` is that earlier file
    report: Any = None  # the local check's FileReport (None with --no-check)


def check_file_id(file_id: str) -> str:
    if not _FILE_ID.fullmatch(file_id or ""):
        shown = file_id if len(file_id) <= 60 else file_id[:57] + "..."
        raise InvalidInput(f"file id {shown!r} is not a file id: expected letters, digits, '.', '_' or '-', "
                           "at most 128 characters (like file-9a8b7c6d-...)")
    return file_id


def check_local(path: Path, purpose: str) -> Any:
    """The offline check (``ftctl files check``); ``InvalidInput`` (exit 2) naming the first problem."""
    from ftctl.datasets.check import check_path

    if purpose not in PURPOSES:
        raise InvalidInput(f"--purpose must be fine-tune or eval (got {purpose!r})")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file" if path.exists() else f"{path}: no such file")
    report = check_path(path, purpose=purpose)
    if not report.ok:
        first = report.errors[0] if report.errors else None
        line = getattr(first, "line", None)
        message = getattr(first, "message", None) or "the file is not a valid dataset"
        more = len(report.errors) - 1
        raise InvalidInput(f"{path}{f':{line}' if line else ''}: {message}"
                           + (f" (and {more} more problem{'s' if more != 1 else ''}: "
                              f"ftctl files check {path})" if more > 0 else "")
                           + "; nothing was uploaded")
    return report


def upload(backend: Backend, path: Path, *, purpose: str = "fine-tune", check: bool = True,
           upload: Upload | None = None) -> Uploaded:
    from ftctl.backends.uploads import file_type_of

    if purpose not in PURPOSES:
        raise InvalidInput(f"--purpose must be fine-tune or eval (got {purpose!r})")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file" if path.exists() else f"{path}: no such file")
    file_type_of(path.name)
    report = check_local(path, purpose) if check else None
    upload = upload or Upload(total=path.stat().st_size)
    file, existed = backend.upload_file(path, purpose=purpose, upload=upload)
    return Uploaded(file, existed, report)


def wait_processed(backend: Backend, file_id: str, *, timeout: float = 600.0, interval: float = 2.0,
                   sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Wire:
    """Poll until the server has processed the file (``processing_status`` final, or absent: a
    purpose that is not validated)."""
    deadline = clock() + timeout
    delay = min(0.05, interval)
    while True:
        file = backend.retrieve_file(file_id)
        status = file.get("processing_status")
        if not status or status in PROCESSED:
            return file
        if clock() >= deadline:
            raise WaitTimeout(f"{file_id} is still {status} after {timeout:g} s of processing; "
                              f"create the job later with -t {file_id}")
        sleep(delay)
        delay = min(delay * 2, interval)


def refusal(file: Wire, field: str) -> str | None:
    """Why the server's processing refused ``file`` (None when it is usable)."""
    status = file.get("processing_status")
    if status not in ("INVALID_FORMAT", "FAILED"):
        return None
    report = file.get("validation_report") or {}
    why = report.get("error") or ("the server failed to process it" if status == "FAILED" else "invalid format")
    return f"{field} {file.get('filename') or file['id']} ({file['id']}) was refused by the server: {why}"


def is_local_path(value: str | None) -> bool:
    """``create -t VALUE``: an existing regular file is uploaded, anything else is an id (as tg does)."""
    if not value:
        return False
    path = Path(value)
    if path.is_dir():
        raise InvalidInput(f"{value} is a directory, not a file: give a .jsonl file or a file id")
    return path.is_file()


@dataclass
class Resolved:
    ids: dict[str, str] = field(default_factory=dict)  # option name -> file id
    notes: list[str] = field(default_factory=list)


def check_create_paths(values: dict[str, str | None]) -> dict[str, Any]:
    """``create --dry-run`` and the first step of create: the local files among ``values``,
    checked offline (exit 2 on the first invalid one)."""
    return {name: check_local(Path(v), "fine-tune") for name, v in values.items() if is_local_path(v)}


def upload_for_create(backend: Backend, values: dict[str, str | None], *, timeout: float = 600.0,
                      interval: float = 2.0, on_note: Callable[[str], None] | None = None) -> Resolved:
    """Upload each local file among ``values`` (dedup), wait until the server processed it, and
    stop with its report if the server refused it. Returns the ids to send."""
    resolved = Resolved()
    for name, value in values.items():
        if not is_local_path(value):
            continue
        path = Path(value)  # type: ignore[arg-type]
        done = upload(backend, path, check=False)
        file_id = done.file["id"]
        if on_note is not None:
            on_note(f"{path}: {'already uploaded as' if done.existed else 'uploaded as'} {file_id}")
        file = wait_processed(backend, file_id, timeout=timeout, interval=interval)
        why = refusal(file, name)
        if why:
            raise ApiError(why + "; no job was created")
        resolved.ids[name] = file_id
    return resolved
