"""What every command shares: the options every command takes, registered around a command's body,
which receives a ``Session`` (``ftctl.commands.session``: configuration, terminal, backend).

``command()`` appends the shared options to a command's own signature, so each command function
lists only what is its own, and ``ftctl retrieve ID --json --backend sim`` and
``ftctl --backend sim retrieve ID --json`` both work. A command returns a ``Shown`` (or nothing,
when it has printed its answer as it went, like ``sim serve``) and ``command()`` hands it to
``ftctl.output.render``, the one place that chooses JSON or the human view.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Any, Callable, Optional

import typer

from ftctl.commands import completers
from ftctl.commands.session import Session
from ftctl.output.terminal import COLOR_CHOICES

OUTPUT = "Output"
CONNECTION = "Connection"

_SHARED: dict[str, inspect.Parameter] = {
    name: inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
    for name, annotation in {
        "json_": Annotated[Optional[bool], typer.Option(
            "--json", help="Print strict JSON on stdout: the API's objects, unchanged.",
            rich_help_panel=OUTPUT, show_default=False)],
        "fields": Annotated[Optional[str], typer.Option(
            "--fields", metavar="A,B", help="Print only these fields, as JSON (implies --json).",
            rich_help_panel=OUTPUT, show_default=False, autocompletion=completers.field_names)],
        "color": Annotated[Optional[str], typer.Option(
            "--color", metavar="auto|always|never", help="Colour the output.", rich_help_panel=OUTPUT,
            show_default=False, autocompletion=completers.choices(*COLOR_CHOICES))],
        "backend": Annotated[Optional[str], typer.Option(
            "--backend", metavar="sim|together", rich_help_panel=CONNECTION, show_default=False,
            autocompletion=completers.choices("sim", "together"),
            help="Where jobs live (env FTCTL_BACKEND; default: together if TOGETHER_API_KEY is set, "
                 "else sim)")],
        "base_url": Annotated[Optional[str], typer.Option(
            "--base-url", metavar="URL", rich_help_panel=CONNECTION, show_default=False,
            help="The API's host root (env TOGETHER_BASE_URL; default: https://api.together.ai)")],
        "debug": Annotated[Optional[bool], typer.Option(
            "--debug", help="Show tracebacks and HTTP traces on stderr (the key as Bearer ****).",
            rich_help_panel=CONNECTION, show_default=False)],
    }.items()
}


_CONTEXT = inspect.Parameter("_ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)


def command(app: typer.Typer, name: str | None = None, *, output: str | tuple[str, ...] = (),
            without: tuple[str, ...] = (), **kwargs: Any) -> Callable[[Callable], Callable]:
    """Register ``fn(session, ...)`` as a command taking the shared options too. ``output`` is the
    kind (or kinds) of object its ``--json`` prints, for ``--fields``; it rides on the registered
    callback (``output_kinds``), where the ``--fields`` completer finds it. ``without`` names the
    shared options that do not apply: not offered, and refused when given before the command."""
    kinds = (output,) if isinstance(output, str) else tuple(output)
    shared_here = {k: p for k, p in _SHARED.items() if k not in without}

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "session"]

        @functools.wraps(fn)
        def run(*args: Any, **values: Any) -> Any:
            ctx: typer.Context = values.pop("_ctx")
            inherited = dict(ctx.find_root().obj or {})
            environment = inherited.pop("environment", None)
            for key in without:
                if inherited.get(key) is not None:
                    from ftctl.errors import InvalidInput

                    raise InvalidInput(f"--{key.replace('_', '-')} does not apply to '{ctx.command_path}'")
            shared = {k: values.pop(k) for k in shared_here}
            for key, value in inherited.items():
                if shared.get(key) is None:
                    shared[key] = value
            session = Session(**{k: v for k, v in shared.items() if v is not None}, output=kinds,
                              environment=environment)
            try:
                shown = fn(session, *args, **values)
                if shown is not None:
                    session.render(shown)
            finally:
                session.close()

        run.__signature__ = own.replace(parameters=params + list(shared_here.values()) + [_CONTEXT])  # type: ignore[attr-defined]
        run.__annotations__ = {}
        run.output_kinds = kinds  # type: ignore[attr-defined]
        from ftctl.commands.help_layout import Command

        app.command(name, cls=Command, **kwargs)(run)
        return fn

    return register


def root_options(ctx: typer.Context, **values: Any) -> None:
    """Store the root's shared options (``ftctl --json list``) for every command to inherit,
    beside the environment the entry point put there."""
    ctx.obj = {**(ctx.obj or {}), **{k: v for k, v in values.items() if v is not None}}


ROOT_PARAMS = [_SHARED[k] for k in ("json_", "fields", "backend", "base_url", "color", "debug")]
