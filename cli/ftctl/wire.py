"""The wire: the API's vocabulary that every layer may import, and that imports nothing of ftctl.

Wire objects are the API's JSON-shaped dicts, field names unchanged, so ``--json`` prints exactly
what the API said. Strict JSON (RFC 8259) is written here too: non-finite numbers become the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (docs/contract.md), never the bare tokens
Python writes. The simulator stores, and the CLI prints, through the same encoder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import IO, Any

Wire = dict[str, Any]


def wire_float(x: float) -> float | str:
    """A float as ftctl's JSON carries it: strict JSON has no NaN or infinities, so they are the
    strings "NaN", "Infinity" and "-Infinity" (docs/contract.md); text views use the same words."""
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

# Secrets a create body may carry (W&B, Hugging Face): masked in traces and dry runs like the key,
# and never stored by the simulator.
SECRET_BODY_FIELDS = ("wandb_key", "wandb_api_key", "hf_api_token")

# Job statuses (docs/api.md §4). Unknown ones are kept as they are, never an error.
TERMINAL_STATUSES = frozenset({"completed", "error", "user_error", "cancelled"})
FAILED_STATUSES = frozenset({"error", "user_error", "cancelled"})


def failure_reason(job: dict[str, Any]) -> str | None:
    """Why a job failed: the message of its last error-level event (the API has no other field for
    it). None when the job did not fail, or its events (``retrieve`` without them) do not say."""
    if job.get("status") not in FAILED_STATUSES:
        return None
    for event in reversed(job.get("events") or []):
        if isinstance(event, dict) and str(event.get("level") or "").lower() == "error" and event.get("message"):
            return str(event["message"])
    return None


def failure(job: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"status", "reason"}`` of a job that ended unsuccessfully, else None: the ``failure`` field
    of ftctl's own ``explain --json`` and ``metrics --json`` objects (README, "JSON output")."""
    if not job or job.get("status") not in FAILED_STATUSES:
        return None
    return {"status": job["status"], "reason": failure_reason(job)}


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


CHUNK = 2000  # list items encoded at a time when streaming


def strict(value: Any) -> Any:
    """A copy of ``value`` with every non-finite float replaced by its contract string."""
    if isinstance(value, float):
        return wire_float(value)
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, *, pretty: bool = False) -> str:
    try:  # fast path: most payloads have no NaN, and allow_nan=False proves it
        return json.dumps(value, allow_nan=False, ensure_ascii=False, indent=2 if pretty else None,
                          separators=None if pretty else (",", ":"))
    except ValueError:
        return json.dumps(strict(value), allow_nan=False, ensure_ascii=False,
                          indent=2 if pretty else None, separators=None if pretty else (",", ":"))


def write(stream: IO[str], value: Any, *, pretty: bool = False) -> None:
    """``dumps(value)`` and a newline, written in pieces: a long compact list (100,000 events) is
    encoded a chunk at a time, so the whole document never sits in memory twice, and objects that
    carry their own compact JSON (``Encoded``) are copied, not encoded again."""
    if pretty or not isinstance(value, list):
        stream.write(dumps(value, pretty=pretty) + "\n")
        return
    stream.write("[")
    for start in range(0, len(value), CHUNK):
        chunk = value[start:start + CHUNK]
        if start:
            stream.write(",")
        if all(type(item) is Encoded for item in chunk):
            stream.write(",".join(item.text for item in chunk))
        else:
            stream.write(dumps(chunk)[1:-1])
    stream.write("]\n")
