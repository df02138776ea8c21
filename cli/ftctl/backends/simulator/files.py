"""The simulator's files: what ``/v1/files`` holds (``docs/api.md`` §6), for the embedded backend
and for ``ftctl sim serve`` alike.

The bytes live beside the store under ``files/``, named by their SHA-256 (and extension, so the
checker sees the type), so identical uploads share one copy; the rows live in the store's
``files`` table. A file is visible only once its bytes are in place: an upload interrupted before
that leaves nothing a reader, a dedup check or a job can see. Processing runs "on the server"
with the same checks as ``ftctl files check`` (``ftctl.datasets.check``) and ends a few simulated
steps after the upload, giving the ``processing_status`` and ``validation_report`` the API gives.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import sqlite3
import uuid
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Iterator

from ftctl.backends.uploads import FILE_TYPES, check_purpose, checksum_of, file_type_of
from ftctl.errors import ApiError, InvalidInput, NotFound

if TYPE_CHECKING:
    from ftctl.backends.simulator.store import Store
    from ftctl.wire import Wire

# The two files every store starts with, so that `ftctl create -t file-train -v file-val` works
# out of the box (package data: samples/*.jsonl).
SAMPLES = {"file-train": "train.jsonl", "file-val": "val.jsonl"}
# The checker's format names, as the API's report spells them (its one published sample says
# "conversation"; the others follow the SDK's DatasetFormat values).
WIRE_FORMATS = {"conversational": "conversation", "preference": "preference_openai"}
PROCESSING_STEPS = 3.0  # processing lasts as long as this many training steps at the simulator's speed
CHUNK = 1 << 20
BLOB_DIR = "files"


class FileExists(ApiError):
    """The same bytes are already uploaded for this purpose (the API's 409): ``file_id`` is theirs."""

    code = "file_exists"

    def __init__(self, file_id: str) -> None:
        super().__init__(f"an identical file is already uploaded as {file_id}")
        self.file_id = file_id


def sample_bytes(name: str) -> bytes:
    return resources.files("ftctl.backends.simulator").joinpath("samples", name).read_bytes()


class Files:
    def __init__(self, store: Store, home: Path, *, clock: Callable[[], float], speed: float) -> None:
        self.store, self.clock, self.speed = store, clock, speed
        self.blobs = home / BLOB_DIR

    # -- a new store ------------------------------------------------------------------------------

    def seed(self, db: sqlite3.Connection) -> None:
        """The sample files, already processed (called inside the store's upgrade transaction)."""
        now = self.clock()
        for file_id, name in SAMPLES.items():
            data = sample_bytes(name)
            checksum = hashlib.sha256(data).hexdigest()
            self._put_blob(checksum, "jsonl", data)
            db.execute(
                "INSERT OR IGNORE INTO files (id, created_at, filename, bytes, purpose, file_type, checksum, "
                "state, processed_at) VALUES (?, ?, ?, ?, 'fine-tune', 'jsonl', ?, 'ready', ?)",
                (file_id, int(now), name, len(data), checksum, now))

    # -- uploading in one process (the embedded backend) --------------------------------------------

    def upload(self, path: Path, *, purpose: str, progress: Callable[[int], None] | None = None) -> tuple[Wire, bool]:
        """Store ``path``; returns the file object and whether an identical one was already there."""
        check_purpose(purpose)
        kind = file_type_of(path.name)
        checksum = checksum_of(path)
        existing = self._ready_duplicate(checksum, purpose)
        if existing is not None:
            return self._wire(existing), True
        blob = self.blob(checksum, kind)
        if not blob.exists():
            with open(path, "rb") as source:
                self._write_blob(blob, _chunks(source), progress=progress)
        size = blob.stat().st_size
        if progress is not None:
            progress(size)
        row = self._register(path.name, purpose, kind, checksum, size)
        return self._wire(row), False

    # -- uploading over HTTP (sim serve): POST, PUT, preprocess; or multipart -------------------------

    def begin(self, *, filename: str, purpose: str, file_type: str, checksum: str,
              multipart: bool = False) -> dict[str, Any]:
        """A row for bytes still to come; ``FileExists`` when a ready file has the same checksum."""
        check_purpose(purpose)
        if file_type not in FILE_TYPES.values():
            raise InvalidInput(f"file_type must be jsonl, parquet or csv (got {file_type!r})")
        if not filename or "/" in filename or len(filename) > 255:
            raise InvalidInput(f"file_name must be a plain file name (got {filename!r})")
        if len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum.lower()):
            raise InvalidInput(f"checksum must be a SHA-256 hex digest (got {checksum!r})")
        existing = self._ready_duplicate(checksum.lower(), purpose)
        if existing is not None:
            raise FileExists(existing["id"])
        file_id = f"file-{uuid.uuid4()}"
        token = secrets.token_urlsafe(24)
        self.store.file_write(
            "INSERT INTO files (id, created_at, filename, bytes, purpose, file_type, checksum, state, token, "
            "upload_id) VALUES (?, ?, ?, 0, ?, ?, ?, 'uploading', ?, ?)",
            (file_id, int(self.clock()), filename, purpose, file_type, checksum.lower(), token,
             f"upload-{uuid.uuid4()}" if multipart else None))
        return self._row(file_id, uploading=True)

    def check_upload(self, file_id: str, token: str) -> None:
        """``NotFound`` unless an upload of ``file_id`` is in progress under this signature."""
        self._pending(file_id, token)

    def spool_path(self) -> Path:
        """A fresh private temporary name beside the blobs (the server spools a request body there)."""
        self.blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.blobs / f".upload-{uuid.uuid4().hex}"

    def receive(self, file_id: str, token: str, chunks: Iterable[bytes]) -> None:
        """The bytes of a single upload (the presigned PUT)."""
        row = self._pending(file_id, token)
        blob = self.blob(row["checksum"], row["file_type"])
        self._write_blob(blob, chunks, checksum=row["checksum"])
        self.store.file_write("UPDATE files SET bytes = ? WHERE id = ?", (blob.stat().st_size, file_id))

    def preprocess(self, file_id: str) -> Wire:
        """``POST /v1/files/{id}/preprocess``: the bytes are in; the file becomes visible."""
        row = self._row(file_id, uploading=True)
        if row["state"] == "uploading":
            if not self.blob(row["checksum"], row["file_type"]).exists():
                raise InvalidInput(f"file {file_id} has no content yet: PUT its bytes to the upload URL first")
            self._make_ready(file_id)
        return self._wire(self._row(file_id))

    def receive_part(self, file_id: str, token: str, number: int, chunks: Iterable[bytes]) -> str:
        """One part of a multipart upload; returns its ETag."""
        row = self._pending(file_id, token)
        parts = self._parts_dir(row["upload_id"])
        for folder in (self.blobs, parts.parent, parts):
            folder.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.md5(usedforsecurity=False)
        tmp = parts / f".{number}.{uuid.uuid4().hex}"
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
            os.replace(tmp, parts / str(number))
        finally:
            tmp.unlink(missing_ok=True)
        return digest.hexdigest()

    def complete(self, file_id: str, upload_id: str, parts: list[dict[str, Any]]) -> Wire:
        row = self._row(file_id, uploading=True)
        if row["state"] != "uploading" or row["upload_id"] != upload_id:
            raise InvalidInput(f"no multipart upload {upload_id!r} in progress for file {file_id}")
        numbers = [p.get("part_number") for p in parts]
        if not numbers or numbers != list(range(1, len(numbers) + 1)):
            raise InvalidInput("parts must list part_number 1..N in order")
        folder = self._parts_dir(upload_id)
        missing = [n for n in numbers if not (folder / str(n)).is_file()]
        if missing:
            raise InvalidInput(f"part {missing[0]} of upload {upload_id} was never uploaded")

        def joined() -> Iterator[bytes]:
            for n in numbers:
                with open(folder / str(n), "rb") as f:
                    yield from _chunks(f)

        blob = self.blob(row["checksum"], row["file_type"])
        self._write_blob(blob, joined(), checksum=row["checksum"])
        self._drop_parts(upload_id)
        self.store.file_write("UPDATE files SET bytes = ? WHERE id = ?", (blob.stat().st_size, file_id))
        self._make_ready(file_id)
        return self._wire(self._row(file_id))

    def abort(self, file_id: str, upload_id: str) -> None:
        self.store.file_write("DELETE FROM files WHERE id = ? AND state = 'uploading' AND upload_id = ?",
                              (file_id, upload_id))
        self._drop_parts(upload_id)

    # -- reading and deleting ---------------------------------------------------------------------

    def list(self) -> list[Wire]:
        return [self._wire(r) for r in self.store.file_rows("state = 'ready'")]

    def retrieve(self, file_id: str) -> Wire:
        return self._wire(self._row(file_id))

    def delete(self, file_id: str) -> Wire:
        row = self._row(file_id)
        self.store.file_write("DELETE FROM files WHERE id = ?", (file_id,))
        if not self.store.file_rows("checksum = ?", (row["checksum"],)):
            self.blob(row["checksum"], row["file_type"]).unlink(missing_ok=True)
        return {"id": file_id, "object": "file", "deleted": True}

    def content(self, file_id: str) -> Path:
        """Where the file's bytes are (the served endpoint streams them; the backend copies them)."""
        row = self._row(file_id)
        blob = self.blob(row["checksum"], row["file_type"])
        if not blob.exists() and file_id in SAMPLES:  # a store whose files/ was removed by hand
            self._put_blob(row["checksum"], row["file_type"], sample_bytes(SAMPLES[file_id]))
        if not blob.exists():
            raise ApiError(f"the content of {file_id} is missing from {self.blobs}")
        return blob

    def usable(self, file_id: str, field: str) -> Wire:
        """A file a job may train on: held, and not found invalid (create's check)."""
        try:
            file = self.retrieve(file_id)
        except NotFound:
            raise NotFound(f"{field} {file_id!r} is not an uploaded file (upload it with "
                           f"'ftctl files upload PATH', or see 'ftctl files list')") from None
        if file.get("processing_status") in ("INVALID_FORMAT", "FAILED"):
            report = file.get("validation_report") or {}
            raise InvalidInput(f"{field} {file_id} failed validation: "
                               f"{report.get('error') or file['processing_status']}; fix the file and upload it again")
        return file

    # -- inside -----------------------------------------------------------------------------------

    def blob(self, checksum: str, file_type: str) -> Path:
        return self.blobs / f"{checksum}.{file_type}"

    def _ready_duplicate(self, checksum: str, purpose: str) -> dict[str, Any] | None:
        rows = self.store.file_rows("state = 'ready' AND checksum = ? AND purpose = ?", (checksum, purpose),
                                    newest_first=False)
        return rows[0] if rows else None

    def _row(self, file_id: str, *, uploading: bool = False) -> dict[str, Any]:
        rows = self.store.file_rows("id = ?" + ("" if uploading else " AND state = 'ready'"), (file_id,))
        if not rows:
            raise NotFound(f"no file with id {file_id!r}", hint=f"the simulator's store is {self.store.path}")
        return rows[0]

    def _pending(self, file_id: str, token: str) -> dict[str, Any]:
        rows = self.store.file_rows("id = ? AND state = 'uploading'", (file_id,))
        if not rows or not token or not secrets.compare_digest(rows[0]["token"] or "", token):
            raise NotFound(f"no upload in progress for {file_id!r} with this signature")
        return rows[0]

    def _register(self, filename: str, purpose: str, kind: str, checksum: str, size: int) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4()}"
        now = self.clock()
        self.store.file_write(
            "INSERT INTO files (id, created_at, filename, bytes, purpose, file_type, checksum, state, "
            "processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', ?)",
            (file_id, int(now), filename, size, purpose, kind, checksum, now + self._processing_time()))
        return self._row(file_id)

    def _make_ready(self, file_id: str) -> None:
        self.store.file_write("UPDATE files SET state = 'ready', token = NULL, processed_at = ? "
                              "WHERE id = ? AND state = 'uploading'",
                              (self.clock() + self._processing_time(), file_id))

    def _processing_time(self) -> float:
        return 0.0 if math.isinf(self.speed) else PROCESSING_STEPS / self.speed

    def _write_blob(self, blob: Path, chunks: Iterable[bytes], *, checksum: str | None = None,
                    progress: Callable[[int], None] | None = None) -> None:
        """Write to a temporary name and rename: an interrupted write leaves no blob behind."""
        self.blobs.mkdir(mode=0o700, parents=True, exist_ok=True)  # user-only, as the store
        tmp = self.blobs / f".upload-{uuid.uuid4().hex}"
        digest, done = hashlib.sha256(), 0
        try:
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done)
            if checksum is not None and digest.hexdigest() != checksum:
                raise InvalidInput(f"the uploaded bytes do not match the checksum given at upload "
                                   f"({digest.hexdigest()[:12]}... is not {checksum[:12]}...)")
            os.replace(tmp, blob)
        finally:
            tmp.unlink(missing_ok=True)

    def _put_blob(self, checksum: str, file_type: str, data: bytes) -> None:
        blob = self.blob(checksum, file_type)
        if not blob.exists():
            self._write_blob(blob, [data])

    def _parts_dir(self, upload_id: str) -> Path:
        return self.blobs / ".parts" / upload_id

    def _drop_parts(self, upload_id: str | None) -> None:
        if not upload_id:
            return
        folder = self._parts_dir(upload_id)
        if folder.is_dir():
            for part in folder.iterdir():
                part.unlink(missing_ok=True)
            folder.rmdir()

    # -- processing -------------------------------------------------------------------------------

    def _wire(self, row: dict[str, Any]) -> Wire:
        status, report = self._processing(row)
        file: dict[str, Any] = {
            "id": row["id"], "object": "file", "created_at": row["created_at"] or 1, "filename": row["filename"],
            "bytes": row["bytes"], "purpose": row["purpose"], "FileType": row["file_type"],
            "Processed": status == "COMPLETED", "processing_status": status}
        if report is not None:
            file["validation_report"] = report
        return file

    def _processing(self, row: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        if row["processing_status"]:
            return row["processing_status"], json.loads(row["validation_report"] or "null")
        now, done = self.clock(), row["processed_at"] or 0.0
        if now < done:
            started = done - self._processing_time()
            return ("PENDING" if now < started + (done - started) / 3 else "RUNNING"), None
        status, report = self._validate(row)
        # first reader stores the outcome; a concurrent one computed the same
        self.store.file_write("UPDATE files SET processing_status = ?, validation_report = ? "
                              "WHERE id = ? AND processing_status IS NULL", (status, json.dumps(report), row["id"]))
        return status, report

    def _validate(self, row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        from ftctl.datasets.check import check_path

        try:
            blob = self.content(row["id"])
        except ApiError:
            return "FAILED", {"valid": False, "file_id": row["id"]}
        checked = check_path(blob, max_errors=1, purpose=row["purpose"])
        if not checked.ok:
            first = checked.errors[0] if checked.errors else None
            line = getattr(first, "line", None)
            message = getattr(first, "message", None) or "the file is not a valid dataset"
            return "INVALID_FORMAT", {"valid": False, "nlines": checked.num_samples or None, "file_id": row["id"],
                                      "error_type": "INVALID_FORMAT",
                                      "error": f"Line {line}: {message}" if line else message}
        report: dict[str, Any] = {"valid": True, "dataset_format": WIRE_FORMATS.get(checked.format, checked.format)}
        report.update(dataset_flags(blob) if row["file_type"] == "jsonl" else {})
        report.update({"nlines": checked.num_samples, "file_id": row["id"]})
        return "COMPLETED", report


def dataset_flags(path: Path) -> dict[str, bool]:
    """The report's ``dataset_has_*`` flags (``docs/api.md`` §6), from one pass."""
    flags = dict.fromkeys(("dataset_has_sample_weights", "dataset_has_message_weights", "dataset_is_multimodal",
                           "dataset_has_tools", "dataset_has_parallel_tool_calls", "dataset_has_reasoning"), False)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            flags["dataset_has_sample_weights"] |= "weight" in row
            flags["dataset_has_tools"] |= "tools" in row
            messages = row.get("messages") or (row.get("input") or {}).get("messages") or []
            for m in messages if isinstance(messages, list) else []:
                if not isinstance(m, dict):
                    continue
                calls = m.get("tool_calls")
                flags["dataset_has_message_weights"] |= "weight" in m
                flags["dataset_is_multimodal"] |= isinstance(m.get("content"), list)
                flags["dataset_has_tools"] |= bool(calls) or m.get("role") == "tool"
                flags["dataset_has_parallel_tool_calls"] |= isinstance(calls, list) and len(calls) > 1
                flags["dataset_has_reasoning"] |= "reasoning" in m or "reasoning_content" in m
    return flags


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from _chunks(f)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk
