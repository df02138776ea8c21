"""The backend interface: where jobs live. The implementations (the embedded simulator and
Together's API over httpx) and the factory that picks one live in ``ftctl.backends``.

Every method returns the API's wire objects (``ftctl.wire``) so that ``--json`` prints exactly
what the API said; ``ftctl.models`` reads them where types matter. Failures are ``FtctlError``s:
``NotFound`` (6), ``AuthError`` (4), ``ApiError`` (1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, ContextManager, Iterator, Protocol

from ftctl.wire import MetricsQuery, Rows, Wire


@dataclass
class Download:
    """An open checkpoint download: ``chunks`` are the archive's bytes from ``start`` (the offset
    asked for, or 0 when the server ignored the range) to ``total``. A broken stream raises
    ``ftctl.errors.DownloadInterrupted`` from the iterator."""

    total: int
    start: int
    filename: str  # what the server calls the archive (Content-Disposition), or ""
    content_type: str
    chunks: Iterator[bytes]


STAGES = {  # what an interrupted upload left behind, by the stage it was in
    "checking": "nothing was sent",
    "hashing": "nothing was sent",
    "registering": "the server may have reserved an id, but no bytes were sent; nothing usable was created",
    "sending": "the bytes were only partly sent; no usable file was created",
    "processing": "the bytes were sent; the server may still register the file: check 'ftctl files list'",
    "aborting": "the partial upload was being cancelled; check 'ftctl files list'",
    "aborted": "the partial upload was cancelled on the server; nothing usable was created",
    "done": "the file was uploaded",
}


@dataclass
class Upload:
    """Where an upload is: its stage, its file id once the server named one, the bytes sent."""

    total: int
    done: int = 0
    stage: str = "checking"
    file_id: str | None = None
    on_progress: Callable[[int, int], None] | None = None

    def advance(self, n: int) -> None:
        self.reach(self.done + n)

    def reach(self, done: int) -> None:
        self.done = done
        if self.on_progress is not None:
            self.on_progress(done, self.total)

    def left_behind(self, backend_name: str) -> str:
        where = "the simulator" if backend_name == "sim" else "Together"
        what = STAGES.get(self.stage, "its state is unknown")
        if backend_name == "sim" and self.stage != "done":
            what = "nothing was registered; no file was created"
        return f"on {where}: {what}" + (f" (id {self.file_id})" if self.file_id and self.stage != "done" else "")


class Backend(Protocol):
    name: str  # "sim" or "together"

    def create(self, body: Wire) -> Wire: ...

    def estimate_price(self, body: Wire) -> Wire:
        """``POST /v1/fine-tunes/estimate-price`` (``create_request.estimate_body``): either
        ``{"estimation_available": true, "allowed_to_proceed", "estimated_total_price" (USD),
        "estimated_train_token_count", "estimated_eval_token_count", "user_limit"}`` or
        ``{"estimation_available": false, "unavailable_reason"}``."""
        ...

    def retrieve(self, job_id: str, *, events: bool = True, once: bool = False) -> Wire:
        """The full job. ``events=False`` says the caller will not read the embedded event log, so a
        backend that builds it (the simulator) may leave it empty; the real API always sends it.
        ``once`` (with ``events=False``): a single read, not a poll, so the HTTP backend may take
        the job's list item instead of a retrieve that embeds every event."""
        ...

    def list(self) -> list[Wire]: ...

    def cancel(self, job_id: str) -> Wire: ...

    def events(self, job_id: str) -> list[Wire] | Rows:
        """The event log in order; the simulator makes it as it is read (``wire.Rows``)."""
        ...

    def checkpoints(self, job_id: str) -> list[Wire]: ...

    def metrics(self, job_id: str, query: MetricsQuery = MetricsQuery()) -> list[Wire] | Rows: ...

    def delete(self, job_id: str) -> Wire:
        """``DELETE /v1/fine-tunes/{id}``: ``{"message": ...}``. A job still running is refused."""
        ...

    def open_download(self, job_id: str, *, step: int | None, checkpoint: str,
                      start: int = 0) -> ContextManager[Download]:
        """``GET /v1/finetune/download`` from byte ``start``: ``checkpoint`` is the API's value
        (merged, adapter or model_output_path); ``step`` None means the checkpoint the job shipped."""
        ...

    # -- files (``/v1/files``) -------------------------------------------------------------------

    def upload_file(self, path: Path, *, purpose: str = "fine-tune", upload: Upload | None = None) -> tuple[Wire, bool]:
        """Upload ``path``: (the file object, True when identical bytes were already uploaded and
        that file is returned instead). ``upload`` is told the stage,
        the file id once known, and the bytes sent."""
        ...

    def list_files(self) -> list[Wire]: ...

    def retrieve_file(self, file_id: str) -> Wire: ...

    def delete_file(self, file_id: str) -> Wire: ...

    def file_content(self, file_id: str, out: BinaryIO) -> int:
        """Write the file's bytes to ``out``; returns how many."""
        ...

    def close(self) -> None: ...
