"""The ``Session`` that carries one run's resolved configuration, terminal and (lazily) backend
into a command's body, and the two views most commands return. No Typer here: the quick reads
(``ftctl.commands.quick``) run the same session without building the command tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftctl.output.terminal import COLOR_CHOICES, Terminal

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.config import Config
    from ftctl.environment import Environment
    from ftctl.jobs import Service
    from ftctl.local_state import LocalState
    from ftctl.output.render import Shown

SIM_NOTE_MARKER = "simulator-note-shown"


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
