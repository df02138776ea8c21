"""The world one run of ftctl sees beyond its arguments: its clock (and, as the terminal moves
here, its streams). The entry point builds it from the real process; tests hand ``run`` their own
instead of patching module functions. Imports nothing of ftctl."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Clock:
    """Wall time for the simulator's job timelines; monotonic time and sleeping for waits."""

    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Environment:
    clock: Clock = field(default_factory=Clock)
