"""Faults the served simulator can be told to answer with, for the next N matching requests, so
that retries and error paths are tested against a real socket (``ftctl sim serve --faults``).

A fault is a JSON object posted to ``/_sim/faults``:

- ``{"kind": "status", "status": 429, "retry_after": "1", "count": 2}``: the error envelope with
  that status (``retry_after`` / ``retry_after_ms`` become the ``Retry-After`` /
  ``retry-after-ms`` headers; ``message`` replaces the default message);
- ``{"kind": "slow", "delay": 2.5}``: the normal answer, ``delay`` seconds late;
- ``{"kind": "malformed"}``: a body that is not JSON; ``{"kind": "truncated"}``: the normal body
  cut in half; ``{"kind": "html"}``: an HTML error page (502 unless ``status`` says otherwise);
  ``{"kind": "empty"}``: an empty body;
- ``{"kind": "dropped"}``: the normal answer's headers and half its body, then the connection
  closes (the client sees fewer bytes than Content-Length promised).

``count`` (default 1) is how many requests it hits; ``path`` (a substring of the request path, or
the whole path when it ends in ``$``: ``/v1/fine-tunes$`` is the create, not the price estimate)
and ``method`` narrow which ones. Faults are consumed in the order they were added.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("status", "slow", "malformed", "truncated", "html", "empty", "dropped")
MAX_DELAY = 300.0
_DEFAULT_STATUS = {"status": 500, "html": 502}
# A fault chooses what a client receives, never how HTTP frames it: its header values are one line
# of printable ASCII, and its statuses are ones that may carry the body it sends.
_HEADER_VALUE = re.compile(r"[!-~](?:[ -~]{0,98}[!-~])?")
_BODILESS = {204, 205, 304}


class FaultSpecError(ValueError):
    """A fault the admin endpoint cannot take; the message names the field and the rule."""


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int | None = None
    message: str | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is None:
            return True
        return self.path[:-1] == path if self.path.endswith("$") else self.path in path

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else _DEFAULT_STATUS.get(self.kind, 200)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse(spec: Any) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault is a JSON object like {\"kind\": \"status\", \"status\": 429, \"count\": 2}")
    unknown = sorted(set(spec) - set(Fault.__dataclass_fields__))
    if unknown:
        raise FaultSpecError(f"unknown fault field {unknown[0]!r}; the fields are "
                             f"{', '.join(Fault.__dataclass_fields__)}")
    kind = spec.get("kind", "status" if "status" in spec else None)
    if kind not in KINDS:
        raise FaultSpecError(f"fault kind must be one of {', '.join(KINDS)} (got {kind!r})")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultSpecError(f"fault count must be a whole number >= 1 (got {count!r})")
    status = spec.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        raise FaultSpecError(f"fault status must be an HTTP status 100..599 (got {status!r})")
    if status is not None and (status < 200 or status in _BODILESS):
        raise FaultSpecError(f"fault status must be one that carries a body: 200..599 but not 204, 205 "
                             f"or 304 (got {status})")
    if kind == "status" and status is not None and status < 400:
        raise FaultSpecError(f"a status fault needs an error status >= 400 (got {status})")
    delay = spec.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay) \
            or not 0 <= delay <= MAX_DELAY:
        raise FaultSpecError(f"fault delay must be 0..{MAX_DELAY:g} seconds (got {delay!r})")
    if kind == "slow" and delay == 0:
        raise FaultSpecError("a slow fault needs a delay > 0 in seconds")
    text = {}
    for key in ("message", "retry_after", "retry_after_ms", "path", "method"):
        value = spec.get(key)
        if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int, float))):
            raise FaultSpecError(f"fault {key} must be a string (got {value!r})")
        text[key] = None if value is None else str(value)
    for key in ("retry_after", "retry_after_ms"):
        if text[key] is not None and not _HEADER_VALUE.fullmatch(text[key]):
            raise FaultSpecError(f"fault {key} becomes a header: one line of at most 100 printable ASCII "
                                 f"characters (got {text[key]!r})")
    if text["method"] is not None:
        text["method"] = text["method"].upper()
    return Fault(kind=kind, count=count, status=status, delay=float(delay), **text)


class Faults:
    """The queue of pending faults. Used from the server's event loop only (no locking needed)."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, spec: Any) -> Fault:
        fault = parse(spec)
        self._pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault for this request, used once."""
        for fault in self._pending:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self._pending.remove(fault)
                return Fault(**{**asdict(fault), "count": 1})
        return None

    def clear(self) -> None:
        self._pending.clear()

    def pending(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self._pending]
