"""The backends: the embedded simulator (``backends.simulator``) and Together's API over httpx
(``backends.together``), and the factory that opens the one the configuration names.

Heavy modules (httpx, sqlite3) are imported only when a backend is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.config import Config
    from ftctl.environment import Clock


def load_scenario(backend_name: str, spec: str | None, *, option: str = "--sim-scenario") -> Scenario | None:
    """``--sim-scenario`` (a preset or a scenario file), checked before anything is sent. It never
    travels through the ``Backend`` interface: the factory hands it to the simulator it opens, or,
    on the together backend, sends it in the ``X-Ftctl-Sim-Scenario`` header, which ``ftctl sim
    serve`` reads (a real API ignores a header it does not know)."""
    if spec is None:
        return None
    from ftctl.backends.simulator.scenarios import header_value, load

    scenario = load(spec, option=option)
    if backend_name != "sim":
        header_value(scenario)  # too large for a header: say so now, before anything is sent
    return scenario


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

    if scenario is None:
        return TogetherBackend(config, trace=trace)
    from ftctl.backends.simulator.scenarios import HEADER, header_value

    return TogetherBackend(config, trace=trace, create_headers={HEADER: header_value(scenario)})
