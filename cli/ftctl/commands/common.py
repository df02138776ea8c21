"""What every command shares: the options every command takes, and the ``Session`` that carries
the resolved configuration, the terminal and (lazily) the backend into a command's body.

``command()`` appends the shared options to a command's own signature, so each command function
lists only what is its own, and ``ftctl retrieve ID --json --backend sim`` and
``ftctl --backend sim retrieve ID --json`` both work. A command returns a ``Shown`` (or nothing,
when it has printed its answer as it went, like ``sim serve``) and ``command()`` hands it to
``ftctl.output.render``, the one place that chooses JSON or the human view.
"""

from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer

from ftctl.commands import completers
from ftctl.output.terminal import COLOR_CHOICES, Terminal

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.config import Config
    from ftctl.environment import Environment
    from ftctl.jobs import Service
    from ftctl.local_state import LocalState
    from ftctl.output.render import Shown

OUTPUT = "Output"
SIM_NOTE_MARKER = "simulator-note-shown"
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


class Session:
    """One run of one command."""

    def __init__(self, *, json_: bool = False, fields: str | None = None, color: str | None = None,
                 backend: str | None = None, base_url: str | None = None, debug: bool = False,
                 output: tuple[str, ...] = (), environment: Environment | None = None) -> None:
        color = (color or "auto").lower()
        if color not in COLOR_CHOICES:
            from ftctl.errors import InvalidInput

            raise InvalidInput(f"--color must be auto, always or never (got {color!r})")
        from ftctl.environment import Environment

        self.environment = environment or Environment()
        self.term = Terminal(color=color, environment=self.environment)
        self.output = output
        self.fields = None
        if fields is not None:
            from ftctl.output import fields as field_names

            self.fields = field_names.parse(fields)
            if output:  # a typo is exit 2 before anything is sent, fetched or waited for
                field_names.check(self.fields, field_names.names(output))
        self.json = bool(json_) or self.fields is not None
        self.debug = bool(debug)
        self._backend_flag, self._base_url = backend, base_url
        self._config: Config | None = None
        self._backend: Backend | None = None
        self._service: Service | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from ftctl.config import resolve

            self._config = resolve(backend=self._backend_flag, base_url=self._base_url)
        return self._config

    @property
    def backend(self) -> Backend:
        return self.open_backend()

    def open_backend(self, scenario: Scenario | None = None) -> Backend:
        """The backend, opened on first use; ``scenario`` shapes the jobs the simulator creates."""
        if self._backend is None:
            from ftctl.backends import open_backend

            config = self.config
            self._backend = open_backend(config, trace=self.term.note if self.debug else None, scenario=scenario,
                                         clock=self.environment.clock)
            if config.backend == "sim" and config.backend_defaulted:
                self._simulator_note(config)
        return self._backend

    def _simulator_note(self, config: Config) -> None:
        """Say that the simulator was chosen because no key is set: once per FTCTL_HOME (remembered
        in a marker file), and how to choose it without the note. A URL given without a key would
        otherwise be dropped without a word: that is said every time."""
        import os

        url = self._base_url or os.environ.get("TOGETHER_BASE_URL")
        if url:
            self.term.note(f"Note: using the embedded simulator (TOGETHER_API_KEY is not set; {url} is not "
                           "used: set TOGETHER_API_KEY or pass --backend together).")
            return
        marker = config.home / SIM_NOTE_MARKER
        if marker.exists():
            return
        self.term.note("Note: using the embedded simulator, as TOGETHER_API_KEY is not set (--backend together "
                       "for the real API). Shown once; FTCTL_BACKEND=sim chooses the simulator without it.")
        try:
            # the home is user-only, as the store and the cache make it (they make it only when first used)
            marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError:
            pass  # a read-only home: the note just comes again

    @property
    def local(self) -> LocalState:
        from ftctl.local_state import LocalState

        return LocalState(self.config.home)

    @property
    def service(self) -> Service:
        """The jobs service for this run (``ftctl.jobs``), over this session's backend."""
        if self._service is None:
            from ftctl.jobs import Service

            self._service = Service(self.config.backend, self.open_backend, self.local,
                                    clock=self.environment.clock)
        return self._service

    def emit(self, value: Any, kind: str | None = None) -> None:
        """Data as strict JSON now, for what is printed before a command's end (the state at a
        wait's deadline). ``kind`` names ``value`` when it is not the command's first kind."""
        from ftctl.output.render import emit

        emit(self.term, value, fields=self.fields, kind=kind or (self.output[0] if self.output else None))

    def render(self, shown: Shown) -> None:
        from ftctl.output.render import render_result

        render_result(self.term, shown, as_json=self.json, fields=self.fields,
                      default_kind=self.output[0] if self.output else None)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


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


def job_view(job: dict[str, Any], sent: dict[str, Any] | None = None) -> Shown:
    """A job: the API's object under --json, else its summary (with the early-stopping settings
    ftctl ``sent`` at create, when it created the job)."""
    from ftctl.output.render import Shown

    def human(term: Terminal) -> None:
        from ftctl.output import views

        views.job(term, job, sent)

    return Shown(job, human)


def rows_view(rows: list[dict[str, Any]], view: str, *args: Any) -> Shown:
    """A list of wire objects (events, checkpoints, jobs) drawn by ``ftctl.output.views.<view>``."""
    from ftctl.output.render import Shown

    def human(term: Terminal) -> None:
        from ftctl.output import views

        getattr(views, view)(term, rows, *args)

    return Shown(rows, human)


def root_options(ctx: typer.Context, **values: Any) -> None:
    """Store the root's shared options (``ftctl --json list``) for every command to inherit,
    beside the environment the entry point put there."""
    ctx.obj = {**(ctx.obj or {}), **{k: v for k, v in values.items() if v is not None}}


ROOT_PARAMS = [_SHARED[k] for k in ("json_", "fields", "backend", "base_url", "color", "debug")]
