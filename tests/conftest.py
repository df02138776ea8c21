"""Shared fixtures: every test runs with its own FTCTL_HOME and a clean environment, and can run
ftctl in-process (fast) or as a real subprocess (exit codes, TTY, start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftctl.__main__ import run as ftctl_run
from ftctl.environment import Clock, Environment

pytest_plugins = ("served",)  # the served simulator's fixtures (worked_server, srv) for the tests that use it

CLEARED = ("TOGETHER_API_KEY", "TOGETHER_BASE_URL", "FTCTL_BACKEND", "FTCTL_FORCE_TTY", "NO_COLOR",
           "FORCE_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "WANDB_API_KEY", "_FTCTL_COMPLETE",
           # a suite run inside GitHub Actions must not write the runner's summary nor annotate it
           "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "FTCTL_NO_CI_REPORT")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout, parse_constant=_reject_constant)

    @property
    def problems(self) -> list[str]:
        """stderr without the informational notes (e.g. "Note: using the embedded simulator")."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith("Note:")]


def _reject_constant(name: str):
    raise ValueError(f"non-strict JSON token {name}")


@pytest.fixture(autouse=True)
def ftctl_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ftctl-home"
    monkeypatch.setenv("FTCTL_HOME", str(home))
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FTCTL_SIM_SPEED", "inf")
    monkeypatch.setenv("COLUMNS", "100")
    return home


class SimulatedTime:
    """One fake clock for the simulator and a wait: sleeping moves it, so a two-minute job is
    waited for in milliseconds. ``on_nap(n)`` runs after the n-th pause of a wait."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start
        self.naps: list[float] = []
        self.on_nap = None

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.t += seconds
        if self.on_nap is not None:
            self.on_nap(len(self.naps))

    @property
    def environment(self) -> Environment:
        return Environment(Clock(now=self.now, monotonic=self.now, sleep=self.sleep))


@pytest.fixture
def run_environment() -> dict:
    """The ``Environment`` the ``ftctl`` fixture runs with (None: the real process's clock)."""
    return {"environment": None}


@pytest.fixture
def sim_time(run_environment: dict) -> SimulatedTime:
    """Run ftctl on simulated time (the simulator's clock and wait's sleeps are one fake clock)."""
    time = SimulatedTime()
    run_environment["environment"] = time.environment
    return time


@pytest.fixture
def ftctl(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, run_environment: dict):
    """Run ftctl in this process: ``ftctl("retrieve", ID, "--json", env={...})``."""

    def invoke(*args: str, env: dict[str, str] | None = None, tty: int | None = None) -> Result:
        """``tty=N``: stdout is a terminal N columns wide (1: its real width)."""
        environment = run_environment["environment"]
        if tty is not None:
            environment = (environment or Environment())._replace(tty=True, width=tty if tty > 1 else None)
        capsys.readouterr()
        with monkeypatch.context() as m:
            for key, value in (env or {}).items():
                if value is None:
                    m.delenv(key, raising=False)
                else:
                    m.setenv(key, value)
            code = ftctl_run([str(a) for a in args], environment)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture
def ftctl_proc():
    """Run ftctl as a real process (``python -m ftctl``) with this test's environment."""

    def invoke(*args: str, env: dict[str, str] | None = None, input: str | None = None,
               timeout: float = 60) -> Result:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run([sys.executable, "-m", "ftctl", *map(str, args)], capture_output=True,
                              text=True, env=full_env, input=input, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return invoke


@pytest.fixture
def scenario_file(tmp_path: Path):
    """Write a scenario JSON file and return its path."""

    def write(eval_loss, steps_per_epoch: int | None = None, **extra) -> Path:
        data = {"eval_loss": eval_loss, **extra}
        if steps_per_epoch is not None:
            data["steps_per_epoch"] = steps_per_epoch
        path = tmp_path / f"scenario-{len(list(tmp_path.glob('scenario-*')))}.json"
        path.write_text(json.dumps(data))
        return path

    return write
