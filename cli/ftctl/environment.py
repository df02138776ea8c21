"""The world one run of ftctl sees beyond its arguments: its clock, its streams, whether stdout is a
terminal and how wide, and its environment variables. The entry point builds it from the real
process; tests hand ``run`` their own instead of patching module functions or the process.
Imports nothing of ftctl."""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Callable, Mapping, NamedTuple

ENV_FORCE_TTY = "FTCTL_FORCE_TTY"  # users' knob (screenshots, `script`), like GH_FORCE_TTY: "1" or a width


# Named tuples, not dataclasses: every command builds these, and ``dataclasses`` (with ``inspect``)
# and a frozen dataclass's generated methods cost more at start-up than most reads do.


class Clock(NamedTuple):
    """Wall time for the simulator's job timelines; monotonic time and sleeping for waits."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class Environment(NamedTuple):
    """``None`` everywhere means "the real process's, read when used" (so pytest's captured
    streams and a test's environment variables are seen). A changed copy: ``_replace``."""

    clock: Clock = Clock()
    vars: Mapping[str, str] | None = None
    stdin: IO[str] | None = None
    stdout: IO[str] | None = None
    stderr: IO[str] | None = None
    tty: bool | None = None  # is stdout a terminal? None: ask it (or FTCTL_FORCE_TTY)
    width: int | None = None  # columns when it is; None: the terminal's (or FTCTL_FORCE_TTY=N)

    @property
    def env(self) -> Mapping[str, str]:
        return os.environ if self.vars is None else self.vars

    @property
    def out(self) -> IO[str]:
        return self.stdout or sys.stdout

    @property
    def err(self) -> IO[str]:
        return self.stderr or sys.stderr

    @property
    def input(self) -> IO[str]:
        return self.stdin or sys.stdin

    def stdout_is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        return self.env.get(ENV_FORCE_TTY, "") not in ("", "0") or isatty(self.out)

    def forced_width(self) -> int | None:
        if self.width is not None:
            return self.width
        forced = self.env.get(ENV_FORCE_TTY, "")
        return int(forced) if forced.isdigit() and int(forced) > 1 else None


def isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
