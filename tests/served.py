"""``ftctl sim serve`` as a real process on 127.0.0.1 and a free port, for tests that need a real
socket: ftctl's httpx backend, the vendor SDK and CLI, retries and faults.

    with served(home) as server:
        server.url, server.inject(kind="status", status=429, retry_after="0"), server.log()

and, for test modules, the fixtures ``worked_server`` / ``srv`` (import them) and ``on_the_api``.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from kit import WORKED

TOKEN = "test-token"  # the served simulator accepts any non-empty bearer token
START_TIMEOUT = 30.0


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log_path: Path

    def _admin(self, method: str, body: Any = None) -> Any:
        response = httpx.request(method, self.url + "/_sim/faults", json=body,
                                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]

    def inject(self, **fault: Any) -> None:
        """Queue a fault for the next matching request(s) (``ftctl.backends.simulator.faults``)."""
        self._admin("POST", fault)

    def pending(self) -> list[dict[str, Any]]:
        return self._admin("GET")

    def clear(self) -> None:
        self._admin("DELETE")

    def log(self) -> str:
        return self.log_path.read_text()

    def logged(self, text: str, timeout: float = 30, *, since: int = 0) -> str:
        """The log from character ``since`` on, once that part has ``text``: a request's line is
        written just after its response, so a test that reads its own requests' lines passes
        ``since=len(server.log())`` from before them (a line an earlier test wrote must not count)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()[since:]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return log

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)


@contextmanager
def served(home: Path, *, speed: str = "inf", args: tuple[str, ...] = ("--faults",),
           env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start the server, wait for the URL it prints, stop it (SIGTERM) afterwards."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "serve.log"
    full_env = {**os.environ, "FTCTL_HOME": str(home), "FTCTL_SIM_SPEED": speed, **(env or {})}
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "ftctl", "sim", "serve", "--port", "0", *args],
                                   stdout=subprocess.PIPE, stderr=log, text=True, env=full_env)
    try:
        url = _first_line(process, log_path)
        yield Served(url, process, log_path)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stdout.close()


@contextmanager
def served_worked_example(home: Path) -> Iterator[Served]:
    """A served simulator at 300 steps/s with faults enabled, every job on the worked example's curve
    (``server.scenario`` is its file, for the same job on the in-process simulator)."""
    home.mkdir(parents=True, exist_ok=True)
    scenario = home / "worked.json"
    scenario.write_text(json.dumps({"eval_loss": WORKED, "steps_per_epoch": 24}))
    with served(home, speed="300", args=("--faults", "--scenario", str(scenario))) as server:
        server.scenario = scenario
        yield server


@pytest.fixture(scope="module")
def worked_server(tmp_path_factory) -> Iterator[Served]:
    """``served_worked_example``, one per test module that uses it."""
    with served_worked_example(tmp_path_factory.mktemp("served")) as s:
        yield s


@pytest.fixture
def srv(worked_server: Served) -> Iterator[Served]:
    """The module's server with no fault pending before or after the test."""
    worked_server.clear()
    yield worked_server
    worked_server.clear()


def on_the_api(ftctl: Any, url: str, key: str, **defaults: str) -> Any:
    """The ``ftctl`` fixture on the together backend pointed at ``url``, with ``key`` and ``defaults``
    in its environment (a call's ``env=`` adds to them)."""

    def call(*args: str, env: dict[str, str] | None = None):
        return ftctl(*args, "--backend", "together", "--base-url", url,
                     env={"TOGETHER_API_KEY": key, **defaults, **(env or {})})

    return call


def _first_line(process: subprocess.Popen, log_path: Path) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if selector.select(timeout=0.1):
            line = process.stdout.readline().strip()
            if line:
                return line
        if process.poll() is not None:
            break
    raise RuntimeError(f"ftctl sim serve did not start (exit {process.poll()}): {log_path.read_text()}")
