"""The simulator's jobs and files, in SQLite under ``FTCTL_HOME``: one row per job, written once at
creation (and once more on cancel), and one row per uploaded file (its bytes live beside the store,
content-addressed, see ``files.py``), so that any number of ftctl processes can share it.

WAL mode and a generous busy timeout let concurrent processes read while one writes; every write
is a single ``BEGIN IMMEDIATE`` transaction, so a process killed mid-write leaves the previous
state. A store written by a newer ftctl, or one that is not a database, is refused with the way
out, never rewritten.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from functools import cached_property
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Callable, Iterator

from ftctl.wire import Encoded, LazyEncoded, wire_float
from ftctl.errors import ApiError, InvalidInput
from ftctl.backends.simulator.scenarios import decode_float

SCHEMA_VERSION = 3
_JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    speed      TEXT NOT NULL,
    cancel_at  REAL,
    seed       INTEGER NOT NULL,
    body       TEXT NOT NULL,
    scenario   TEXT,
    eval_loss  TEXT NOT NULL,
    summary    TEXT NOT NULL,
    done_at    REAL,
    final_job  TEXT
)
"""
# A file is 'uploading' from the POST that names it until its bytes are stored (invisible to every
# read, never a dedup answer), then 'ready'. Processing ends at ``processed_at`` on the simulator's
# clock; its outcome is worked out on the first read after that and kept in the last two columns.
_FILES = """
CREATE TABLE IF NOT EXISTS files (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    created_at        INTEGER NOT NULL,
    filename          TEXT NOT NULL,
    bytes             INTEGER NOT NULL,
    purpose           TEXT NOT NULL,
    file_type         TEXT NOT NULL,
    checksum          TEXT NOT NULL,
    state             TEXT NOT NULL,
    token             TEXT,
    upload_id         TEXT,
    processed_at      REAL,
    processing_status TEXT,
    validation_report TEXT
)
"""
_SCHEMA = (_JOBS, _FILES)
# How each older schema becomes the next one (a store is upgraded in place, once, under a lock).
_MIGRATIONS = {
    1: ("ALTER TABLE jobs ADD COLUMN done_at REAL", "ALTER TABLE jobs ADD COLUMN final_job TEXT"),
    2: (_FILES,),
}
FILE_COLUMNS = ("id, created_at, filename, bytes, purpose, file_type, checksum, state, token, upload_id, "
                "processed_at, processing_status, validation_report")
_COLUMNS = "id, created_at, speed, cancel_at, seed, body, scenario, eval_loss, summary, done_at, final_job"


class Record:
    """One stored job. The JSON columns are decoded only when read: listing a finished job needs
    none of them but its final object. (A plain class: a dataclass costs a job's read more to
    define than to use.)"""

    def __init__(self, id: str, created_at: float, speed: float, cancel_at: float | None, seed: int,
                 body_json: str | None, scenario_json: str | None, eval_loss_json: str | None,
                 summary_json: str | None, done_at: float | None = None, final_job_json: str | None = None,
                 store: Store | None = None) -> None:
        self.id, self.created_at, self.speed, self.cancel_at, self.seed = id, created_at, speed, cancel_at, seed
        # None here and below: not read yet (listing reads only what it shows)
        self.body_json, self.scenario_json = body_json, scenario_json
        self.eval_loss_json, self.summary_json = eval_loss_json, summary_json
        self.done_at = done_at  # when the job ends, unless cancelled first
        self.final_job_json = final_job_json  # the job object from ``done_at`` on: it never changes again
        self.store = store

    def ended(self, done_at: float, final_job_json: str) -> Record:
        """This record with when it ends and the job object it ends as."""
        return Record(self.id, self.created_at, self.speed, self.cancel_at, self.seed, self.body_json,
                      self.scenario_json, self.eval_loss_json, self.summary_json, done_at, final_job_json,
                      self.store)

    @cached_property
    def body(self) -> dict[str, Any]:
        return self._decode(self._column("body"))

    @cached_property
    def scenario(self) -> dict[str, Any] | None:
        text = self._column("scenario")
        return None if text is None else self._decode(text)

    @cached_property
    def summary(self) -> dict[str, Any]:
        return self._decode(self._column("summary"))

    @cached_property
    def eval_loss(self) -> list[float]:
        """The curve, read and decoded only when a view needs it."""
        text = self._column("eval_loss")
        try:
            return [x if type(x) is float else decode_float(x) for x in json.loads(text or "[]")]
        except (ValueError, TypeError, KeyError) as exc:
            raise self._damaged(exc) from None

    def finished(self, t: float) -> dict[str, Any] | None:
        """The job object at ``t`` if the job had ended by then and was not cancelled (a listing
        asks SQLite the same question: ``Store.newest_first``)."""
        if self.final_job_json is None or self.cancel_at is not None or self.done_at is None or t < self.done_at:
            return None
        try:
            return Encoded(self.final_job_json)
        except ValueError as exc:
            raise self._damaged(exc) from None

    def _column(self, name: str) -> str | None:
        """A JSON column's text, read from the store now if the listing left it there."""
        text = getattr(self, f"{name}_json")
        if text is None and self.store is not None and self.final_job_json is not None:
            text = self.store.column(self.id, name)
        return text

    def _decode(self, text: str | None) -> Any:
        if text is None:
            raise self._damaged(ValueError("the row has no value"))
        try:
            return json.loads(text)
        except ValueError as exc:
            raise self._damaged(exc) from None

    def _damaged(self, exc: Exception) -> StoreError:
        return _damaged(self.store, self.id, exc)

    @staticmethod
    def encode_loss(values: list[float]) -> str:
        return json.dumps([wire_float(x) for x in values])


class StoreError(ApiError):
    code = "store_error"


def _damaged(store: Store | None, job_id: str, exc: Exception) -> StoreError:
    where = store.path if store is not None else "(unsaved)"
    return StoreError(f"the simulator store {where} has a damaged row for job {job_id!r} ({exc}); "
                      "move the file aside to start a new store")


def _final_text(job_id: str, text: str, store: Store | None) -> LazyEncoded:
    """A finished job's stored object, copied, not decoded: at least its frame must be the object
    ftctl wrote for this job."""
    if not (text.startswith(f'{{"id":{encode_basestring(job_id)},') and text.endswith("}")):
        raise _damaged(store, job_id, ValueError("its stored job object is not the JSON ftctl wrote"))
    return LazyEncoded(text, job_id)


class Store:
    def __init__(self, path: Path, *, seed: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = path
        self._seed = seed  # fills a new (or upgraded) store's files table: the sample files
        self._db: sqlite3.Connection | None = None

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise InvalidInput(f"ftctl's state directory {self.path.parent} (FTCTL_HOME) is a file, not a "
                               "directory; point FTCTL_HOME at a writable directory")
        if self.path.exists() and not self.path.is_file():  # a directory or a device
            raise StoreError(f"the simulator store {self.path} is not a file; nothing was changed. Move it "
                             f"aside to start a new one: mv {self.path} {self.path}.damaged")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise InvalidInput(f"cannot use ftctl's state directory {self.path.parent} (FTCTL_HOME): "
                               f"{_reason(exc)}; point FTCTL_HOME at a writable directory") from None
        try:
            self._prepare(db)
        except BaseException:
            db.close()  # a refused store is left as it was, with no open handle or WAL files behind
            raise
        self._db = db
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        with self._errors():
            db.execute("PRAGMA busy_timeout = 30000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the simulator store {self.path} was written by a newer ftctl (schema {version}, "
                    f"this ftctl reads {SCHEMA_VERSION}); upgrade ftctl, or point FTCTL_HOME elsewhere")
            if version < SCHEMA_VERSION:
                db.execute("BEGIN IMMEDIATE")
                version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
                if version == 0:
                    for statement in _SCHEMA:
                        db.execute(statement)
                for step in range(max(version, 1), SCHEMA_VERSION) if version else ():
                    for statement in _MIGRATIONS[step]:
                        db.execute(statement)
                if version < 3 and self._seed is not None:
                    self._seed(db)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")

    def _errors(self):
        return _translated(self.path)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- reads and writes -----------------------------------------------------------------------

    def add(self, r: Record) -> None:
        db = self._connect()
        with self._errors():
            db.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.id, r.created_at, repr(r.speed), r.cancel_at, r.seed, r.body_json, r.scenario_json,
                 r.eval_loss_json, r.summary_json, r.done_at, r.final_job_json))

    def get(self, job_id: str) -> Record | None:
        db = self._connect()
        with self._errors():
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._record(row)

    def newest_first(self, t: float) -> Iterator[LazyEncoded | Record]:
        """Every job, newest first, with only what a listing reads: a job that had ended by ``t``
        and was not cancelled (``Record.finished``'s rule, asked of SQLite) as its stored final
        object, copied as text; any other as its record, whose JSON columns are read if a view
        needs them (a job still running)."""
        db = self._connect()
        lazy = ("body", "scenario", "eval_loss", "summary")
        columns = ", ".join(f"CASE WHEN final_job IS NULL THEN {c} END" if c in lazy else c
                            for c in _COLUMNS.split(", "))
        ended = "final_job IS NOT NULL AND cancel_at IS NULL AND done_at IS NOT NULL AND done_at <= ?"
        with self._errors():
            rows = db.execute(f"SELECT {ended}, {columns} FROM jobs ORDER BY seq DESC", (t,)).fetchall()
        for row in rows:
            yield _final_text(row[1], row[11], self) if row[0] else self._record(row[1:])

    def column(self, job_id: str, name: str) -> str | None:
        db = self._connect()
        with self._errors():
            row = db.execute(f"SELECT {name} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def request_cancel(self, job_id: str, at: float) -> Record | None:
        """Record the first cancel request; later ones keep the first time."""
        db = self._connect()
        with self._errors():
            db.execute("UPDATE jobs SET cancel_at = ? WHERE id = ? AND cancel_at IS NULL", (at, job_id))
        return self.get(job_id)

    def delete(self, job_id: str) -> bool:
        db = self._connect()
        with self._errors():
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    # -- files ----------------------------------------------------------------------------------------

    def file_rows(self, where: str = "1", args: tuple = (), *, newest_first: bool = True) -> list[dict[str, Any]]:
        db = self._connect()
        with self._errors():
            rows = db.execute(f"SELECT {FILE_COLUMNS} FROM files WHERE {where} "
                              f"ORDER BY seq {'DESC' if newest_first else 'ASC'}", args).fetchall()
        names = FILE_COLUMNS.split(", ")
        return [dict(zip(names, row)) for row in rows]

    def file_write(self, statement: str, args: tuple = ()) -> int:
        """One write to the files table, in its own transaction; the number of rows it changed."""
        db = self._connect()
        with self._errors():
            return db.execute(statement, args).rowcount

    def _record(self, row: tuple) -> Record:
        try:
            return Record(row[0], row[1], float(row[2]), row[3], row[4], row[5], row[6], row[7], row[8],
                          row[9], row[10], self)
        except (ValueError, TypeError) as exc:
            raise StoreError(f"the simulator store {self.path} has a damaged row for job {row[0]!r} "
                             f"({exc}); move the file aside to start a new store") from None


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """sqlite3 errors as one clear line with the way out."""
    try:
        yield
    except sqlite3.Error as exc:
        text = _reason(exc)
        # "no such table/column": a file of ours whose schema was lost or changed by hand
        if isinstance(exc, sqlite3.DatabaseError) and any(
                sign in text for sign in ("not a database", "malformed", "no such table", "no such column")):
            raise StoreError(
                f"the simulator store {path} is damaged ({text}); nothing was changed. Move it "
                f"aside to start a new one: mv {path} {path}.damaged") from None
        if "readonly" in text or "unable to open" in text:
            raise InvalidInput(f"cannot write the simulator store {path} ({text}); "
                               "point FTCTL_HOME at a writable directory") from None
        raise StoreError(f"the simulator store {path} failed: {text}") from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
