"""What ftctl remembers locally under ``FTCTL_HOME``, in one small JSON file (``jobs.json``):

- recent jobs (id, status, model, created_at), written by create/list/retrieve, read at TAB time
  by job-id completion, which must stay cheap (no sqlite, no pydantic, no network);
- the early-stopping settings ftctl sent at create, because the real API does not echo them back
  and the cross-check needs them (``docs/early-stopping.md`` §8).

Only non-secret fields are kept. Writes are atomic (temp file + rename) under an advisory lock, so
concurrent ftctl processes never leave a torn file; the file and its directory are user-only.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

FILE = "jobs.json"
KEEP = 1000  # jobs remembered, newest first
SENT_FIELDS = ("early_stopping_enabled", "early_stopping_patience", "early_stopping_min_delta",
               "early_stopping_warmup_evals", "n_evals", "n_epochs", "training_method")


class LocalState:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / FILE

    def recent(self) -> list[dict[str, Any]]:
        """Remembered jobs, newest first. Never raises: a missing or damaged file is empty."""
        return self._read()[0]

    def _read(self) -> tuple[list[dict[str, Any]], bool]:
        """The remembered jobs, and whether a file is there that cannot be read as the cache."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            jobs = data["jobs"]
            return [j for j in jobs if isinstance(j, dict) and isinstance(j.get("id"), str)], False
        except FileNotFoundError:
            return [], False
        except (OSError, ValueError, KeyError, TypeError):
            return [], True

    def sent(self, job_id: str) -> dict[str, Any] | None:
        """The settings ftctl sent when it created ``job_id``, if it did."""
        for job in self.recent():
            if job["id"] == job_id:
                return job.get("sent")
        return None

    def remember(self, jobs: Iterable[dict[str, Any]], *, sent: dict[str, Any] | None = None) -> None:
        """Add or refresh jobs (wire objects). Best effort: the cache must never fail a command."""
        jobs = list(jobs)
        if not jobs:
            return
        try:
            with self._locked():
                remembered, damaged = self._read()
                fresh = [_entry(j) for j in _changed(jobs, remembered)
                         if isinstance(j, dict) and isinstance(j.get("id"), str)]
                if not fresh:
                    return
                if sent is not None:
                    fresh[0]["sent"] = {k: sent[k] for k in SENT_FIELDS if k in sent}
                if damaged:  # kept, not written over: it may hold the only record of what was sent
                    os.replace(self.path, self.home / (FILE + ".damaged"))
                known = {j["id"]: j for j in remembered}
                for entry in fresh:
                    entry = {**known.get(entry["id"], {}), **entry}
                    known[entry["id"]] = entry
                ordered = sorted(known.values(), key=lambda j: j.get("created_at") or "", reverse=True)[:KEEP]
                if ordered != remembered or damaged:  # a listing that changed nothing writes nothing
                    self._write({"version": 1, "jobs": ordered})
        except OSError:
            pass

    def forget(self, job_id: str) -> None:
        """Drop a (deleted) job from the cache, with what was sent for it. Best effort, like remember."""
        try:
            with self._locked():
                remembered, damaged = self._read()
                if damaged or not any(j["id"] == job_id for j in remembered):
                    return
                self._write({"version": 1, "jobs": [j for j in remembered if j["id"] != job_id]})
        except OSError:
            pass

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.home / (FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except ImportError:  # Windows: the atomic rename still prevents torn files
                pass
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict[str, Any]) -> None:
        import tempfile  # only when something changed: most reads write nothing

        fd, tmp = tempfile.mkstemp(dir=self.home, prefix=".jobs-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _changed(jobs: Iterable[dict[str, Any]], remembered: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The jobs that may differ from what is remembered: a finished job the simulator stored as
    text (``LazyEncoded``, never to change again) that is remembered as finished is skipped
    without decoding it (a listing of 10,000 jobs would otherwise decode the 1,000 it keeps)."""
    from ftctl.wire import TERMINAL_STATUSES, LazyEncoded

    ended = {j["id"] for j in remembered if j.get("status") in TERMINAL_STATUSES}
    for job in jobs:
        if type(job) is LazyEncoded and job.pending and job.id in ended:
            continue
        yield job


def _entry(job: dict[str, Any]) -> dict[str, Any]:
    entry = {"id": job["id"]}
    for key in ("status", "model", "created_at"):
        if isinstance(job.get(key), str):
            entry[key] = job[key]
    return entry
