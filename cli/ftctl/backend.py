"""The backend interface: where jobs live. Two implementations: the embedded simulator
(``ftctl.simulator.backend``) and Together's API over httpx.

Every method returns the API's wire objects (JSON-shaped dicts, field names unchanged) so that
``--json`` prints exactly what the API said; ``ftctl.models`` reads them where types matter.
Failures are ``FtctlError``s: ``NotFound`` (6), ``AuthError`` (4), ``ApiError`` (1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from ftctl.config import Config
    from ftctl.simulator.scenarios import Scenario

Wire = dict[str, Any]


def wire_float(x: float) -> float | str:
    """A float as ftctl's JSON carries it: strict JSON has no NaN or infinities, so they are the
    strings "NaN", "Infinity" and "-Infinity" (cli-contract.md); text views use the same words."""
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


class Encoded(dict):
    """A wire object that carries the exact compact JSON it was decoded from (the simulator keeps
    each finished job that way), so ``--json`` copies that text instead of encoding the object
    again: listing 10,000 jobs is then a decode, not a decode and an encode. Read-only by
    convention: a changed object must be a new plain dict."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(json.loads(text))
        self.text = text

# Job statuses (together-api.md §4.1). Unknown ones are kept as they are, never an error.
TERMINAL_STATUSES = frozenset({"completed", "error", "user_error", "cancelled"})
FAILED_STATUSES = frozenset({"error", "user_error", "cancelled"})


@dataclass(frozen=True)
class MetricsQuery:
    """``GET /v1/fine-tunes/{id}/metrics`` filters; all optional."""

    global_step_from: int | None = None
    global_step_to: int | None = None
    logged_at_from: str | None = None  # ISO-8601
    logged_at_to: str | None = None
    resolution: int | None = None  # uniformly sampled training rows; eval rows always in full

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Backend(Protocol):
    name: str  # "sim" or "together"

    def create(self, body: Wire, *, scenario: Scenario | None = None) -> Wire: ...

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


def open_backend(config: Config, *, trace: Callable[[str], None] | None = None) -> Backend:
    """The backend the configuration names; heavy modules are imported only here. ``trace``
    (``--debug``) receives one line per HTTP request and response, the key masked."""
    if config.backend == "sim":
        from ftctl.simulator.backend import Simulator

        return Simulator(config.home, speed=config.sim_speed)
    from ftctl.together import TogetherBackend

    return TogetherBackend(config, trace=trace)
