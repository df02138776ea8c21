"""A job's evaluation history read through the early-stopping rule: the data behind ``metrics``,
the chart, the explanation, what-if and the cross-check. Pure: no I/O, no printing.

The server's fields (``early_stopped``, ``early_stopping_best_step``, ``early_stopping_best_metric``)
are the truth about a real job; the replay of its history narrates it and is compared with them
(``early-stopping.md`` §6.5). The settings come from what ftctl recorded at create, else the
server's defaults, and the object says which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from ftctl import early_stopping as es

EVAL_KEY = "eval/loss"
STEP_KEY = "train/global_step"
RECORDED, ASSUMED, GIVEN = "recorded", "assumed_defaults", "given"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation and what the rule made of it (fields after the halt are None)."""

    eval: int
    step: int
    eval_loss: float
    missing: bool = False  # the row had no usable eval/loss: read as non-finite
    best_before: float | None = None
    improved: bool | None = None
    warmup: bool | None = None
    streak: int | None = None


def eval_points(rows: Iterable[dict[str, Any]], *, total_steps: int | None = None,
                n_evals: int | None = None, eval_steps: int | None = None) -> list[tuple[int, float, bool]]:
    """(step, eval_loss, missing) for each eval row of ``/metrics``, in step order.

    A row with ``eval/loss`` null or unreadable counts as a non-finite evaluation (the vendor does
    not say; a missing value is not evidence of a good one) and is flagged. A row without
    ``train/global_step`` gets the step A13 gives it.
    """
    points: list[tuple[int, float, bool]] = []
    for i, row in enumerate(r for r in rows if EVAL_KEY in r):
        value, missing = _number(row.get(EVAL_KEY))
        step = row.get(STEP_KEY)
        if not isinstance(step, (int, float)) or isinstance(step, bool) or not math.isfinite(step):
            n = i + 1
            step = n * eval_steps if eval_steps else (
                es.evaluation_step(n, total_steps, n_evals) if total_steps and n_evals else n)
        points.append((int(step), value, missing))
    points.sort(key=lambda p: p[0])
    return points


def _number(value: Any) -> tuple[float, bool]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), False
    if isinstance(value, str):
        try:
            return float(value.replace("Infinity", "inf")), False
        except ValueError:
            pass
    return math.nan, True


@dataclass(frozen=True)
class Analysis:
    evaluations: list[Evaluation]
    settings: es.Settings
    settings_source: str  # recorded | assumed_defaults | given
    enabled: bool | None  # was early stopping on for this job? None: not known
    final: es.State  # the replay's last state
    total_steps: int | None
    job: dict[str, Any] = field(default_factory=dict)

    # -- the replay --------------------------------------------------------------------------

    def step_of(self, i: int | None) -> int | None:
        return None if i is None else self.evaluations[i - 1].step

    @property
    def replay_halt_step(self) -> int | None:
        return self.step_of(self.final.halt_i) if self.final.stopped else None

    @property
    def replay_best_step(self) -> int | None:
        if self.final.best_i is None:
            return self.replay_halt_step
        return self.step_of(self.final.best_i)

    # -- the server's verdict, which wins for a real job ---------------------------------------

    @property
    def server_fired(self) -> bool | None:
        value = self.job.get("early_stopped")
        return value if isinstance(value, bool) else None

    @property
    def fired(self) -> bool:
        if self.enabled is False:
            return False
        server = self.server_fired
        return self.final.stopped if server is None else server

    @property
    def best_step(self) -> int | None:
        server = self.job.get("early_stopping_best_step")
        return server if isinstance(server, int) and self.enabled is not False else self.replay_best_step

    @property
    def best_eval_loss(self) -> float | None:
        if self.enabled is not False and "early_stopping_best_metric" in self.job and self.server_fired is not None:
            return self.job.get("early_stopping_best_metric")
        return self.final.best_value

    @property
    def halt_step(self) -> int | None:
        if not self.fired:
            return None
        if self.server_fired and isinstance(self.job.get("steps_completed"), int):
            return self.job["steps_completed"]
        return self.replay_halt_step

    def eval_at(self, step: int | None) -> int | None:
        if step is None:
            return None
        for e in self.evaluations:
            if e.step == step:
                return e.eval
        return None

    @property
    def disagreements(self) -> list[str]:
        """Where the replay and the server's fields differ (the server's answer is shown as truth)."""
        if self.enabled is False or self.server_fired is None:
            return []
        found = []
        if self.server_fired != self.final.stopped:
            found.append(f"the server says early_stopped={str(self.server_fired).lower()}, the replay says "
                         f"{str(self.final.stopped).lower()}")
        server_best = self.job.get("early_stopping_best_step")
        if isinstance(server_best, int) and self.replay_best_step is not None and server_best != self.replay_best_step:
            found.append(f"the server's best step is {server_best}, the replay's is {self.replay_best_step}")
        server_metric = self.job.get("early_stopping_best_metric")
        if (isinstance(server_metric, (int, float)) and self.final.best_value is not None
                and server_metric != self.final.best_value):
            found.append(f"the server's best eval_loss is {server_metric}, the replay's is {self.final.best_value}")
        return found

    def early_stopping(self) -> dict[str, Any]:
        """The contract's object (``early-stopping.md`` §6.5), plus where the settings came from."""
        halt = self.halt_step
        streak = [e.step for e in self.evaluations[self.final.evals - self.final.streak:self.final.evals]]
        total = self.total_steps
        return {
            "fired": self.fired,
            "reason": (self.final.reason if self.final.stopped else None) if self.fired else None,
            "halt_step": halt,
            "halt_eval": self.eval_at(halt) if halt is not None else None,
            "best_step": self.best_step,
            "best_eval": self.eval_at(self.best_step) if self.best_eval_loss is not None else None,
            "best_eval_loss": self.best_eval_loss,
            "non_improving_steps": streak,
            "patience": self.settings.patience,
            "min_delta": self.settings.min_delta,
            "warmup_evals": self.settings.warmup_evals,
            "steps_refunded": (total - halt) if halt is not None and total is not None else 0,
            "total_steps": total,
            "enabled": self.enabled,
            "settings_source": self.settings_source,
            "replay_agrees": not self.disagreements,
        }


def analyse(job: dict[str, Any], rows: Iterable[dict[str, Any]], *, sent: dict[str, Any] | None = None,
            override: es.Settings | None = None) -> Analysis:
    """Replay ``job``'s eval history under the settings it ran with (or ``override``)."""
    total = job.get("total_steps") if isinstance(job.get("total_steps"), int) else None
    points = eval_points(rows, total_steps=total, n_evals=job.get("n_evals"), eval_steps=job.get("eval_steps"))
    enabled: bool | None = None
    if sent is not None and "early_stopping_enabled" in sent:
        enabled = bool(sent["early_stopping_enabled"])
    elif job.get("early_stopped") is True:
        enabled = True
    if override is not None:
        settings, source = override, GIVEN
    elif sent is not None and enabled:
        settings = es.settings_from(sent.get("early_stopping_patience"), sent.get("early_stopping_min_delta"),
                                    sent.get("early_stopping_warmup_evals"))
        source = RECORDED
    else:
        settings, source = es.Settings(), ASSUMED
    evaluations, final = replay(points, settings)
    return Analysis(evaluations, settings, source, enabled, final, total, dict(job))


def replay(points: list[tuple[int, float, bool]], settings: es.Settings) -> tuple[list[Evaluation], es.State]:
    """Each evaluation with the rule's reading of it; the last state of the fold."""
    out: list[Evaluation] = []
    state = es.INITIAL
    trail = es.trail((p[1] for p in points), settings)
    for i, (step, value, missing) in enumerate(points, 1):
        if state.stopped:
            out.append(Evaluation(i, step, value, missing))
            continue
        before = state.best_value
        state = next(trail)
        out.append(Evaluation(i, step, value, missing, before, state.improved,
                              i <= settings.warmup_evals, state.streak))
    return out, state
