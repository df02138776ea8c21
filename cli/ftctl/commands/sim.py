"""sim serve: the simulator over HTTP, for the vendor's SDK and CLI, or ftctl --backend together."""

from typing import Annotated, Optional

import typer

from ftctl.commands import completers
from ftctl.commands.common import Session, command

SERVE_HELP = (
    "Serve the simulator over HTTP with Together's paths, shapes and errors.\n\n"
    "The same simulator and store as --backend sim (FTCTL_HOME, FTCTL_SIM_SPEED). Point a client at it "
    "with TOGETHER_BASE_URL=URL (ftctl: --backend together --base-url URL) and any non-empty "
    "TOGETHER_API_KEY. Prints the URL on stdout and one line per request on stderr; Ctrl-C or SIGTERM "
    "stops it once in-flight requests finish.\n\n"
    "A request may choose its job's loss curve with the header X-Ftctl-Sim-Scenario: a preset name, "
    "or a scenario as inline JSON (ftctl create --sim-scenario with --backend together sends it).")


def register(app: typer.Typer) -> None:
    from ftctl.commands.help_layout import Group

    group = typer.Typer(name="sim", cls=Group, help="The simulator: serve it over HTTP.", no_args_is_help=True)
    # it always serves the simulator: --backend and --base-url do not apply
    command(group, "serve", output="server", help=SERVE_HELP, without=("backend", "base_url"))(serve)
    app.add_typer(group)


def serve(
    session: Session,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one (printed).", min=0, max=65535)] = 8765,
    sim_scenario: Annotated[Optional[str], typer.Option(
        "--sim-scenario", metavar="NAME|FILE", help="Loss curve for every job created through the server (a "
        "preset or a scenario file), unless a request names its own.", show_default=False,
        autocompletion=completers.scenarios)] = None,
    scenario: Annotated[Optional[str], typer.Option("--scenario", hidden=True, show_default=False,
                                                    autocompletion=completers.scenarios)] = None,
    faults: Annotated[bool, typer.Option(
        "--faults", help="Enable /_sim/faults to make the next requests fail (429, 500, slow, malformed "
        "JSON, truncated, HTML, empty, dropped mid-body), for testing clients.")] = False,
    request_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", help="A client that has not sent a whole request (headers and body) within "
        "this time gets 408 and is disconnected.", min=0.1, max=3600)] = 10.0,
) -> None:
    from ftctl.errors import FtctlError

    try:
        import uvicorn  # noqa: F401 (checked here so that a missing extra is one line, not a traceback)

        from ftctl.backends.simulator import server
    except ImportError as exc:
        raise FtctlError(f"ftctl sim serve needs the 'serve' extra ({exc.name} is missing): "
                           "pip install 'ftctl[serve]'") from None
    from ftctl.backends.simulator import scenarios
    from ftctl.backends.simulator.backend import Simulator
    from ftctl.backends.simulator.faults import Faults
    from ftctl.loopback import is_loopback

    if sim_scenario is not None and scenario is not None:
        from ftctl.errors import InvalidInput

        raise InvalidInput("--sim-scenario and --scenario are one setting; give it once")
    if scenario is not None:  # the old spelling: its errors name it
        default_scenario = scenarios.load(scenario, option="--scenario")
    else:
        default_scenario = scenarios.load(sim_scenario) if sim_scenario is not None else None
    config = session.config
    sock = server.bind(host, port)
    url = server.url_of(sock)
    simulator = Simulator(config.home, speed=config.sim_speed)
    app = server.create_app(simulator, log=session.term.note, faults=Faults() if faults else None,
                            scenario=default_scenario, debug=session.debug)
    server.hold_stop_signals()  # until the server runs: Ctrl-C right after the ready line stops it cleanly
    if session.json:
        session.emit({"url": url, "home": str(config.home), "speed": config.sim_speed, "faults": faults})
    else:
        session.term.write(url)
    session.term.out.flush()
    if not is_loopback(host):
        session.term.warn(f"listening on {host}: anyone who can reach this address can use the simulator "
                          "(any bearer token is accepted)")
    speed = "instant" if config.sim_speed == float("inf") else f"{config.sim_speed:g} steps/s"
    session.term.note(f"Serving the simulator at {url} (store {config.home}, {speed}"
                      f"{', faults at ' + url + '/_sim/faults' if faults else ''}). Use it with "
                      f"TOGETHER_BASE_URL={url} and any TOGETHER_API_KEY. Ctrl-C to stop.")
    try:
        stopped_by = server.run(app, sock, request_timeout=request_timeout, log=session.term.note)
    finally:
        sock.close()
        simulator.close()
    import signal

    session.term.note("Stopped.")
    if stopped_by == signal.SIGINT:
        raise typer.Exit(130)
