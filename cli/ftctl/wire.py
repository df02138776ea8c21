"""The wire: the API's vocabulary that every layer may import, and that imports nothing of ftctl.

Wire objects are the API's JSON-shaped dicts, field names unchanged, so ``--json`` prints exactly
what the API said. Strict JSON (RFC 8259) is written here too: non-finite numbers become the
strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (docs/contract.md), never the bare tokens
Python writes. The simulator stores, and the CLI prints, through the same encoder.
"""

from __future__ import annotations

import json
import math
from itertools import islice
from typing import IO, Any, Callable, Iterable, Iterator, NamedTuple, Sequence

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
    again. Read-only by convention: a changed object must be a new plain dict."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(json.loads(text))
        self.text = text


class LazyEncoded(Encoded):
    """An ``Encoded`` whose text is decoded only when something reads it as a dict: listing
    10,000 jobs as JSON then copies their texts and decodes only the few the recent-jobs cache
    keeps. Every dict method loads it first; code that reads a dict's C-level storage directly
    (the C JSON encoder's compact path) must go through ``dumps``/``write``, which copy the text."""

    __slots__ = ("_pending", "id")

    def __init__(self, text: str, id: str | None = None) -> None:  # noqa: super().__init__ would decode now
        self.text = text
        self.id = id  # known without decoding (the store's key), when given
        self._pending = True

    @property
    def pending(self) -> bool:
        """Not decoded yet."""
        return self._pending

    def load(self) -> LazyEncoded:
        if self._pending:
            self._pending = False
            dict.update(self, json.loads(self.text))
        return self


def _loading(name: str) -> Any:
    method = getattr(dict, name)

    def loaded(self: LazyEncoded, *args: Any, **kwargs: Any) -> Any:
        if self._pending:
            self.load()
        return method(self, *args, **kwargs)

    loaded.__name__ = name
    return loaded


for _name in ("__getitem__", "__contains__", "__iter__", "__len__", "__eq__", "__ne__", "__repr__",
              "__or__", "__ror__", "__reversed__", "__setitem__", "__delitem__", "get", "keys", "items",
              "values", "copy", "setdefault", "pop", "popitem", "update", "clear", "__reduce__",
              "__reduce_ex__", "__sizeof__"):
    setattr(LazyEncoded, _name, _loading(_name))
del _name

class Rows:
    """A long list of wire objects made as they are read (100,000 simulated events), each time it
    is iterated: ``--json`` writes them a chunk at a time, so they never sit in memory together.
    Anything that needs a real list (``--fields``, an indented answer) takes ``list(rows)``."""

    __slots__ = ("_make", "eval_columns", "texts")

    def __init__(self, make: Callable[[], Iterable[Any]],
                 eval_columns: Callable[[], tuple[Sequence[int], Sequence[float]]] | None = None,
                 texts: Callable[[], Iterable[str]] | None = None) -> None:
        self._make = make
        # metrics rows: their eval rows' steps and eval/loss values as two columns, when the maker
        # has them (the simulator): a reading then needs no row dicts at all
        self.eval_columns = eval_columns
        # the same items as compact JSON, in pieces of one or more items joined by "," (exactly what
        # encoding them would give), when the maker can write that directly (the simulator's
        # events): the compact list is then written with no object made
        self.texts = texts

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make())


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


class MetricsQuery(NamedTuple):
    """``GET /v1/fine-tunes/{id}/metrics`` filters; all optional."""

    global_step_from: int | None = None
    global_step_to: int | None = None
    logged_at_from: str | None = None  # ISO-8601
    logged_at_to: str | None = None
    resolution: int | None = None  # uniformly sampled training rows; eval rows always in full

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self._asdict().items() if v is not None}


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
    if isinstance(value, Rows):
        if value.texts is not None and not pretty:
            return "[" + ",".join(filter(None, value.texts())) + "]"
        value = list(value)
    if not pretty:
        if isinstance(value, Encoded):
            return value.text
        if isinstance(value, list) and any(isinstance(item, Encoded) for item in value):
            return "[" + ",".join(_items(value)) + "]"
        if type(value) is dict and any(isinstance(v, (list, Encoded, Rows)) for v in value.values()) \
                and all(type(k) is str for k in value):
            # {"data": [jobs]}: each member through dumps, so carried texts are copied
            return "{" + ",".join(_encode(k) + ":" + dumps(v) for k, v in value.items()) + "}"
    return _encode(value, pretty=pretty)


def _encode(value: Any, *, pretty: bool = False) -> str:
    try:  # fast path: most payloads have no NaN, and allow_nan=False proves it
        return json.dumps(value, allow_nan=False, ensure_ascii=False, indent=2 if pretty else None,
                          separators=None if pretty else (",", ":"))
    except ValueError:
        return json.dumps(strict(value), allow_nan=False, ensure_ascii=False,
                          indent=2 if pretty else None, separators=None if pretty else (",", ":"))


def _items(chunk: list[Any]) -> Iterator[str]:
    """The compact JSON of each item of ``chunk``: carried texts copied, runs of others encoded at once."""
    plain: list[Any] = []
    for item in chunk:
        if isinstance(item, Encoded):
            if plain:
                yield _encode(plain)[1:-1]
                plain = []
            yield item.text
        else:
            plain.append(item)
    if plain:
        yield _encode(plain)[1:-1]


def write(stream: IO[str], value: Any, *, pretty: bool = False) -> None:
    """``dumps(value)`` and a newline, written in pieces: a long compact list (100,000 events) is
    encoded a chunk at a time, so the whole document never sits in memory twice, and objects that
    carry their own compact JSON (``Encoded``) are copied, not encoded again."""
    if pretty or not isinstance(value, (list, Rows)):
        stream.write(dumps(value, pretty=pretty) + "\n")
        return
    for piece in list_pieces(value):
        stream.write(piece)
    stream.write("\n")


def list_pieces(value: Iterable[Any]) -> Iterator[str]:
    """``dumps(list(value))`` in pieces (a stream or a server's answer): "[", the items a chunk of
    CHUNK at a time (or a ``Rows``' texts, copied), a comma before all but the first, "]"."""
    yield "["
    if isinstance(value, Rows) and value.texts is not None:
        separator = ""
        for piece in value.texts():
            if piece:
                yield separator + piece
                separator = ","
        yield "]"
        return
    items = iter(value)
    separator = ""
    while chunk := list(islice(items, CHUNK)):
        yield separator + ",".join(_items(chunk))
        separator = ","
    yield "]"
