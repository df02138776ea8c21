"""Strict JSON (RFC 8259) for ``--json``: non-finite numbers become the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (``cli-contract.md``), never the bare tokens Python writes."""

from __future__ import annotations

import json
from typing import IO, Any

from ftctl.backend import Encoded, wire_float

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
