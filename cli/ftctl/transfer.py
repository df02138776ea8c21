"""Streaming a download to disk at constant memory, resumably. Never prints: progress goes to a
callback.

The bytes go to ``.NAME.part`` beside the target, with ``.NAME.part.json`` recording what they
are (job, step, checkpoint type, total size). The part file becomes NAME (an atomic rename) only
when it holds exactly the announced total. A broken stream is resumed in the same run with a
``Range`` request from the bytes already written; when the retries run out, both files stay, and
the same command later resumes from there, provided the sidecar says they are the same archive.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

from ftctl.backend import Download
from ftctl.errors import ApiError, DownloadInterrupted, InvalidInput

Progress = Callable[[int, int], None]  # (bytes on disk, total)


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    resumed_from: int  # bytes already on disk from an earlier, interrupted run (0: a fresh download)


def partial_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(f".{dest.name}.part"), dest.with_name(f".{dest.name}.part.json")


def fetch(open_at: Callable[[int], ContextManager[Download]], dest: Path, identity: dict[str, Any], *,
          force: bool = False, progress: Progress | None = None, retries: int = 2, delay: float = 1.0,
          sleep: Callable[[float], None] = time.sleep) -> Fetched:
    """Download to ``dest``. ``open_at(offset)`` opens the archive from that byte; ``identity``
    says which archive it is, so a part file left by another download is never continued."""
    part, sidecar = partial_paths(dest)
    start, total = _resumable(part, sidecar, identity)
    resumed_from = start
    failures = 0
    while total is None or start < total:
        try:
            with open_at(start) as download:
                if download.start != start or (total is not None and download.total != total):
                    if download.start != 0:
                        raise ApiError(f"the server sent the archive from byte {download.start}, not "
                                       f"{start} as asked; delete {part} and try again")
                    start = resumed_from = 0  # it ignored the range, or the archive changed: start over
                total = download.total
                _write_json(sidecar, {**identity, "total": total})
                start = _write(part, start, total, download, progress)
        except DownloadInterrupted as exc:
            start = part.stat().st_size if part.exists() else 0
            if failures >= retries:
                raise ApiError(f"{exc.message}, after {start} of {total} bytes; run the same command again "
                               "to resume from there") from None
            failures += 1
            sleep(delay * 2 ** (failures - 1))
    if dest.exists() and not force:  # it appeared while the bytes were arriving
        raise InvalidInput(f"{dest} already exists; pass --force to overwrite it (the download is kept "
                           f"in {part})")
    os.replace(part, dest)
    sidecar.unlink(missing_ok=True)
    return Fetched(dest, total, resumed_from)


def _write(part: Path, start: int, total: int, download: Download, progress: Progress | None) -> int:
    """Append the stream to the part file from ``start``; the bytes on disk afterwards. Fewer
    than ``total`` is an interruption, more is the server's error."""
    done = start
    with open(part, "r+b" if start and part.exists() else "wb") as f:
        f.seek(start)
        f.truncate()
        if progress:
            progress(done, total)
        try:
            for chunk in download.chunks:
                f.write(chunk)
                done += len(chunk)
                if done > total:
                    raise ApiError(f"the server sent more than the {total} bytes it announced; nothing was saved")
                if progress:
                    progress(done, total)
        finally:
            f.flush()
            os.fsync(f.fileno())
    if done < total:
        raise DownloadInterrupted(f"the download ended early ({done} of {total} bytes)")
    return done


def _resumable(part: Path, sidecar: Path, identity: dict[str, Any]) -> tuple[int, int | None]:
    """Bytes to keep from an earlier run, and the total it recorded; a part file that is not this
    archive's (or not readable as such) is discarded."""
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        size = part.stat().st_size
        total = recorded.get("total")
        if {k: recorded.get(k) for k in identity} == identity and isinstance(total, int) and 0 < size <= total:
            return size, total
    except (OSError, ValueError, AttributeError):
        pass
    part.unlink(missing_ok=True)
    sidecar.unlink(missing_ok=True)
    return 0, None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
