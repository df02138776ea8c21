"""Loss curves for simulated jobs: named presets, JSON scenario files, or a curve from the seed.

``--sim-scenario NAME|FILE`` (``docs/contract.md``, "Simulator scenarios"). A file is
``{"eval_loss": [2.0, 1.5, "NaN", ...], "steps_per_epoch": 24}``; it may also name a ``preset``
(to generate the values) and a ``fail_at_step`` (the job ends in ``error`` there).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from ftctl.wire import wire_float
from ftctl.request_checks import WHOLE_MAX
from ftctl.errors import InvalidInput

if TYPE_CHECKING:
    import random

MAX_FILE_BYTES = 16 * 1024 * 1024  # ~800,000 values: far more than the simulator's 100,000 evaluations
DEFAULT_STEPS_PER_EPOCH = 24
NON_FINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf,
              "-inf": -math.inf}
_FILE_KEYS = {"eval_loss", "steps_per_epoch", "fail_at_step", "preset"}


class Scenario(NamedTuple):  # not a dataclass: a job's read should not pay for defining one
    name: str
    eval_loss: tuple[float, ...] | None = None
    steps_per_epoch: int | None = None
    fail_at_step: int | None = None
    preset: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = self._asdict()
        if self.eval_loss is not None:
            data["eval_loss"] = [wire_float(x) for x in self.eval_loss]
        return data

    def settings_json(self) -> dict[str, Any]:
        """Everything but the values, which the simulator stores on their own."""
        return self._replace(eval_loss=None).to_json()  # _asdict would copy every value first

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        values = data.get("eval_loss")
        return cls(data["name"], None if values is None else tuple(decode_float(v) for v in values),
                   data.get("steps_per_epoch"), data.get("fail_at_step"), data.get("preset"))


def decode_float(v: Any) -> float:
    if isinstance(v, str):
        return NON_FINITE[v.strip().lower()]
    return float(v)


# --- presets: each a shape over fractions f = i/n of the run ---------------------------------------


def _falling(f: float, start: float, floor: float, rate: float) -> float:
    return floor + (start - floor) * (0.85 * math.exp(-rate * f) + 0.15 * (1 - f))


def _plateau(rng: random.Random, n: int) -> list[float]:
    """Falls to its floor by 40% of the run, then wobbles just above it: nothing improves after."""
    start, floor = rng.uniform(2.0, 2.4), rng.uniform(0.45, 0.6)
    knee = max(1, round(0.4 * n))
    fall = [floor + (start - floor) * (math.exp(-5 * i / knee) - math.exp(-5)) / (1 - math.exp(-5))
            for i in range(1, knee + 1)]
    return fall + [floor + 0.002 + abs(rng.gauss(0, 0.004)) for _ in range(n - knee)]


def _improving(rng: random.Random, n: int) -> list[float]:
    start, floor = rng.uniform(2.0, 2.4), rng.uniform(0.3, 0.5)
    return [_falling(i / n, start, floor, 3.0) for i in range(1, n + 1)]


def _diverging(rng: random.Random, n: int) -> list[float]:
    start, low = rng.uniform(2.0, 2.4), rng.uniform(0.8, 1.0)
    turn = 0.3
    return [start - (start - low) * (i / n) / turn if i / n <= turn
            else low + 2.5 * (i / n - turn) ** 1.5 for i in range(1, n + 1)]


def _noisy(rng: random.Random, n: int) -> list[float]:
    start, floor = rng.uniform(2.0, 2.4), rng.uniform(0.4, 0.6)
    return [_falling(i / n, start, floor, 4.0) + rng.gauss(0, 0.06) for i in range(1, n + 1)]


def _nan(rng: random.Random, n: int) -> list[float]:
    values = _improving(rng, n)
    values[math.ceil(0.6 * n) - 1:] = [math.nan] * (n - math.ceil(0.6 * n) + 1)
    return values


def generated(rng: random.Random, n: int) -> list[float]:
    """A realistic run: falls, flattens and, in most runs, turns up, with a little noise."""
    start, floor = rng.uniform(1.8, 2.6), rng.uniform(0.35, 0.9)
    rate = rng.uniform(3.0, 7.0)
    turn = rng.uniform(0.35, 1.15)  # where over-fitting sets in; past 1.0 it never does
    rise = rng.uniform(0.3, 1.2) * (floor + 0.2)
    noise = rng.uniform(0.001, 0.006)
    return [_falling(i / n, start, floor, rate) + rise * max(0.0, i / n - turn) ** 2
            + rng.gauss(0, noise) for i in range(1, n + 1)]


PRESETS: dict[str, tuple[Callable[[random.Random, int], list[float]], str]] = {
    "plateau": (_plateau, "falls fast, then flat with small noise: patience runs out"),
    "improving": (_improving, "improves at every evaluation: early stopping never fires"),
    "nan": (_nan, "diverges to NaN at 60% of the evaluations: a non-finite halt"),
    "diverging": (_diverging, "falls for 30% of the run, then rises: an early halt"),
    "noisy": (_noisy, "a falling curve with large noise: streaks start and reset"),
    "error": (generated, "a normal curve, but the job fails with status error at 40% of its steps"),
}


def _round(values: list[float]) -> list[float]:
    # Reported to 4 decimals, like a training log; 6 on long runs so a slow decline stays visible.
    digits = 4 if len(values) <= 1000 else 6
    return [round(v, digits) if math.isfinite(v) else v for v in values]


def curve(scenario: Scenario | None, n_evals: int, seed: int) -> list[float]:
    """The eval_loss of each of ``n_evals`` evaluations."""
    if scenario is not None and scenario.eval_loss is not None:
        if len(scenario.eval_loss) < n_evals:
            raise InvalidInput(f"scenario {scenario.name!r} has {len(scenario.eval_loss)} eval_loss values "
                               f"but the job runs n_evals={n_evals}; give at least {n_evals}")
        return list(scenario.eval_loss[:n_evals])
    if n_evals == 0:
        return []
    preset = scenario.preset if scenario is not None else None
    make = PRESETS[preset][0] if preset else generated
    import random  # a curve is drawn at create only

    return _round(make(random.Random(seed), n_evals))


def preset_seed(scenario: Scenario) -> int:
    """A fixed seed per preset name (stable across processes, unlike ``hash``)."""
    return sum(ord(c) * 31 ** k for k, c in enumerate(scenario.preset or "")) % 2**32


def fail_step(scenario: Scenario | None, total_steps: int) -> int | None:
    if scenario is None:
        return None
    if scenario.fail_at_step is not None:
        return scenario.fail_at_step
    return max(1, round(0.4 * total_steps)) if scenario.preset == "error" else None


# --- sent to a served simulator ------------------------------------------------------------------

HEADER = "X-Ftctl-Sim-Scenario"  # read by ``server.py`` (SCENARIO_HEADER)
MAX_HEADER_BYTES = 8000  # servers refuse much larger header blocks (uvicorn's h11: 16 KiB in all)


def header_value(scenario: Scenario) -> str:
    """The scenario as the header carries it: a preset's name, or the file's JSON on one line."""
    if scenario.eval_loss is None and scenario.preset and scenario.steps_per_epoch is None \
            and scenario.fail_at_step is None:
        return scenario.preset
    data = {k: v for k, v in scenario.to_json().items() if k != "name" and v is not None}
    text = json.dumps(data, separators=(",", ":"))  # ASCII only, as a header must be
    if len(text) > MAX_HEADER_BYTES:
        raise InvalidInput(f"scenario {scenario.name} is {len(text)} bytes as JSON, too large to send in the "
                           f"{HEADER} header (at most {MAX_HEADER_BYTES}); give it to the server instead: "
                           f"ftctl sim serve --sim-scenario {scenario.name}")
    return text


# --- loading -------------------------------------------------------------------------------------


def load(spec: str, *, option: str = "--sim-scenario") -> Scenario:
    """A preset name or a JSON file; ``InvalidInput`` with the reason otherwise (naming ``option``,
    the flag the user typed)."""
    if spec in PRESETS:
        return Scenario(name=spec, preset=spec)
    path = Path(spec)
    if not path.is_file():
        raise InvalidInput(f"unknown {option} {spec!r}: not a preset ({', '.join(PRESETS)}) "
                           "nor a readable JSON file")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"scenario file {spec} is {size} bytes; the limit is {MAX_FILE_BYTES}")
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read scenario file {spec}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"scenario file {spec} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput(f"scenario file {spec} is nested too deeply to be a scenario") from None
    return from_data(data, name=spec)


def from_data(data: Any, *, name: str) -> Scenario:
    if not isinstance(data, dict):
        raise InvalidInput(f"scenario {name} must be a JSON object with an eval_loss list")
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise InvalidInput(f"scenario {name} has unknown key {unknown[0]!r}; "
                           f"the keys are {', '.join(sorted(_FILE_KEYS))}")
    preset = data.get("preset")
    if preset is not None and preset not in PRESETS:
        raise InvalidInput(f"scenario {name}: unknown preset {preset!r} (presets: {', '.join(PRESETS)})")
    values = data.get("eval_loss")
    if values is None and preset is None:
        raise InvalidInput(f"scenario {name} needs an eval_loss list (or a preset)")
    if values is not None:
        if not isinstance(values, list):
            raise InvalidInput(f"scenario {name}: eval_loss must be a list (got {type(values).__name__})")
        values = tuple(_value(v, i, name) for i, v in enumerate(values, 1))
    for key in ("steps_per_epoch", "fail_at_step"):
        v = data.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= WHOLE_MAX):
            raise InvalidInput(f"scenario {name}: {key} must be a whole number >= 1 and <= {WHOLE_MAX} "
                               f"(got {v!r})")
    return Scenario(name, values, data.get("steps_per_epoch"), data.get("fail_at_step"), preset)


def _value(v: Any, i: int, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise InvalidInput(f"scenario {name}: eval_loss[{i}] must be a number or \"NaN\", \"Infinity\", "
                           f"\"-Infinity\" (got {json.dumps(v)[:40]})")
    try:
        return decode_float(v)
    except (KeyError, ValueError, OverflowError):
        raise InvalidInput(f"scenario {name}: eval_loss[{i}] must be a number or \"NaN\", \"Infinity\", "
                           f"\"-Infinity\" (got {json.dumps(v)[:40]})") from None
