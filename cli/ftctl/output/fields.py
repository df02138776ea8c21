"""``--fields a,b``: keep only the named fields of each object (implies ``--json``)."""

from __future__ import annotations

from typing import Any

from ftctl.errors import InvalidInput


def select(value: Any, fields: list[str]) -> Any:
    items = value if isinstance(value, list) else [value]
    known = sorted({k for item in items if isinstance(item, dict) for k in item})
    unknown = [f for f in fields if known and f not in known]
    if unknown or not fields:
        raise InvalidInput(f"unknown field {unknown[0] if unknown else ''!r} for --fields; "
                           f"valid fields: {', '.join(known)}")
    pick = lambda item: {f: item.get(f) for f in fields} if isinstance(item, dict) else item  # noqa: E731
    return [pick(i) for i in value] if isinstance(value, list) else pick(value)
