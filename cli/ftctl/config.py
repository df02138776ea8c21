"""Settings from flags and the environment, resolved once per run (``docs/contract.md``).

Precedence: flag > environment > default. The API key lives here and nowhere else; it is kept out
of ``repr`` so that no debug print or traceback can show it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

from ftctl.errors import InvalidInput

DEFAULT_BASE_URL = "https://api.together.ai"
# Fast enough that the README's demo job (72 of 120 steps, early-stopped) is done in ~3 seconds.
DEFAULT_SIM_SPEED = 30.0

ENV_BACKEND = "FTCTL_BACKEND"
ENV_HOME = "FTCTL_HOME"
ENV_SIM_SPEED = "FTCTL_SIM_SPEED"
ENV_API_KEY = "TOGETHER_API_KEY"
ENV_BASE_URL = "TOGETHER_BASE_URL"
BACKENDS = ("sim", "together")


class Config(NamedTuple):  # not a dataclass: cheaper to define at every start-up
    backend: str
    backend_defaulted: bool  # chosen because no key was set: say so once on stderr
    base_url: str
    home: Path
    sim_speed: float
    api_key: str | None = None

    def __repr__(self) -> str:  # never the key
        return (f"Config(backend={self.backend!r}, backend_defaulted={self.backend_defaulted!r}, "
                f"base_url={self.base_url!r}, home={self.home!r}, sim_speed={self.sim_speed!r})")


def home() -> Path:
    """Where ftctl keeps its state: ``FTCTL_HOME``, else the platform's user data dir."""
    explicit = os.environ.get(ENV_HOME)
    if explicit and explicit.strip():  # blank is unset, as for the other variables
        return Path(explicit).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("ftctl", appauthor=False))


def resolve(*, backend: str | None = None, base_url: str | None = None) -> Config:
    key = os.environ.get(ENV_API_KEY) or None
    chosen = backend or os.environ.get(ENV_BACKEND) or None
    defaulted = chosen is None
    if chosen is None:
        chosen = "together" if key else "sim"
    chosen = chosen.strip().lower()
    if chosen not in BACKENDS:
        raise InvalidInput(f"backend must be sim or together (got {chosen!r} from "
                           f"{'--backend' if backend else ENV_BACKEND})")
    return Config(
        backend=chosen,
        backend_defaulted=defaulted,
        base_url=(base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/"),
        home=home(),
        sim_speed=sim_speed(),
        api_key=key,
    )


def sim_speed() -> float:
    text = os.environ.get(ENV_SIM_SPEED, "").strip()
    if not text:
        return DEFAULT_SIM_SPEED
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not speed > 0:
        raise InvalidInput(f"{ENV_SIM_SPEED} must be a positive number of steps per second, or inf "
                           f"(got {text!r})")
    return speed
