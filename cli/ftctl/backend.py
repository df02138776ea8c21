"""The backend interface: where jobs live. The implementations (the embedded simulator and
Together's API over httpx) and the factory that picks one live in ``ftctl.backends``.

Every method returns the API's wire objects (``ftctl.wire``) so that ``--json`` prints exactly
what the API said; ``ftctl.models`` reads them where types matter. Failures are ``FtctlError``s:
``NotFound`` (6), ``AuthError`` (4), ``ApiError`` (1).
"""

from __future__ import annotations

from typing import Protocol

from ftctl.wire import MetricsQuery, Wire


class Backend(Protocol):
    name: str  # "sim" or "together"

    def create(self, body: Wire) -> Wire: ...

    def retrieve(self, job_id: str, *, events: bool = True) -> Wire:
        """The full job. ``events=False`` says the caller will not read the embedded event log, so a
        backend that builds it (the simulator) may leave it empty; the real API always sends it."""
        ...

    def list(self) -> list[Wire]: ...

    def cancel(self, job_id: str) -> Wire: ...

    def events(self, job_id: str) -> list[Wire]: ...

    def checkpoints(self, job_id: str) -> list[Wire]: ...

    def metrics(self, job_id: str, query: MetricsQuery = MetricsQuery()) -> list[Wire]: ...

    def close(self) -> None: ...
