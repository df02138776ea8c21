"""The one place that decides how a command's result is shown: strict JSON for scripts (``--json``,
``--fields``), or the human view for people. Commands return a ``Shown`` and never choose
themselves (pipx's ``render_result`` is the model)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    from ftctl.output.terminal import Terminal


class Shown(NamedTuple):  # not a dataclass: on every command's path, and cheap to define
    """What a command produced. ``data`` is what ``--json`` prints (the API's objects, unchanged);
    ``human`` draws it for a person (None: the JSON is the human view too, e.g. a dry run);
    ``kind`` names what ``data`` is when it is not the command's first declared kind."""

    data: Any  # or a function making it, called only when JSON is printed (it may be costly)
    human: Callable[[Terminal], None] | None = None
    kind: str | None = None


def emit(term: Terminal, value: Any, *, fields: list[str] | None = None, kind: str | None = None) -> None:
    """Data as strict JSON: indented on a terminal, one line otherwise; ``fields`` keeps only those.
    On a terminal, control characters a server put in a string are written as JSON escapes (the
    same value); into a pipe, the API's text goes as it came."""
    from ftctl.wire import write

    if fields is not None:
        from ftctl.output.fields import select
        from ftctl.wire import Rows

        if isinstance(value, Rows):
            value = list(value)

        value = select(value, fields, kind)
    if term.is_tty:
        from ftctl.output.terminal import inert_json
        from ftctl.wire import dumps

        term.out.write(inert_json(dumps(value, pretty=True)) + "\n")
    else:
        write(term.out, value)


def render_result(term: Terminal, shown: Shown, *, as_json: bool, fields: list[str] | None,
                  default_kind: str | None) -> None:
    if as_json or shown.human is None:
        data = shown.data() if callable(shown.data) else shown.data
        emit(term, data, fields=fields, kind=shown.kind or default_kind)
    else:
        shown.human(term)
