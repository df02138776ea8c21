"""The backends: the embedded simulator (``backends.simulator``) and Together's API over httpx
(``backends.together``), and the factory that opens the one the configuration names.

Heavy modules (httpx, sqlite3) are imported only when a backend is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ftctl.errors import InvalidInput

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.config import Config
    from ftctl.environment import Clock


def load_scenario(backend_name: str, spec: str | None) -> Scenario | None:
    """The simulator-only ``--sim-scenario``, checked before anything is sent. It never travels
    through the ``Backend`` interface: the factory hands it to the simulator it opens."""
    if spec is None:
        return None
    if backend_name != "sim":
        raise InvalidInput(f"--sim-scenario works only with the simulator (--backend sim); "
                           f"the {backend_name} backend trains on your data (got {spec!r})")
    from ftctl.backends.simulator.scenarios import load

    return load(spec)


def open_backend(config: Config, *, trace: Callable[[str], None] | None = None,
                 scenario: Scenario | None = None, clock: Clock | None = None) -> Backend:
    """The backend the configuration names. ``trace`` (``--debug``) receives one line per HTTP
    request and response, the key masked; ``scenario`` shapes the jobs the simulator creates, on
    the simulator's timeline read from ``clock``."""
    if config.backend == "sim":
        from ftctl.backends.simulator.backend import Simulator

        return Simulator(config.home, speed=config.sim_speed, scenario=scenario,
                         clock=clock.now if clock is not None else None)
    from ftctl.backends.together import TogetherBackend

    return TogetherBackend(config, trace=trace)
