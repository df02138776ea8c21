"""A job's evaluation history read through the early-stopping rule: the data behind ``metrics``,
the chart, the explanation, what-if and the cross-check. Pure: no I/O, no printing.

The server's fields (``early_stopped``, ``early_stopping_best_step``, ``early_stopping_best_metric``)
are the truth about a real job; the replay of its history narrates it and is compared with them
(``docs/early-stopping.md`` §5). The settings come from what ftctl recorded at create, else the
server's defaults, and the object says which.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator, NamedTuple, Sequence, overload

from ftctl import early_stopping as es
from ftctl.wire import TERMINAL_STATUSES

EVAL_KEY = "eval/loss"
STEP_KEY = "train/global_step"
RECORDED, ASSUMED, GIVEN = "recorded", "assumed_defaults", "given"


class Evaluation(NamedTuple):
    """One evaluation and what the rule made of it (fields after the halt are None). A tuple:
    a history can hold 100,000 of them."""

    eval: int
    step: int
    eval_loss: float
    missing: bool = False  # the row had no usable eval/loss: read as non-finite
    best_before: float | None = None
    improved: bool | None = None
    warmup: bool | None = None
    streak: int | None = None


class Evaluations(Sequence[Evaluation]):
    """A history's evaluations as the rule read them, kept as columns (steps, values, and the
    fold's ``es.Reading``): an ``Evaluation`` is made only for a row someone looks at (a table
    shows 17 of 100,000), and the chart and the explanation read the columns directly."""

    __slots__ = ("steps", "values", "missing", "reading", "warmup", "read")

    def __init__(self, columns: Columns, reading: es.Reading, warmup: int) -> None:
        self.steps, self.values, self.missing = columns
        self.reading, self.warmup = reading, warmup
        self.read = reading.final.evals  # evaluations after a halt are kept, unread

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, k: int) -> Evaluation: ...
    @overload
    def __getitem__(self, k: slice) -> list[Evaluation]: ...
    def __getitem__(self, k: int | slice) -> Evaluation | list[Evaluation]:
        if isinstance(k, slice):
            return [self._at(j) for j in range(*k.indices(len(self.steps)))]
        n = len(self.steps)
        if not -n <= k < n:
            raise IndexError("evaluation index out of range")
        return self._at(k % n)

    def _at(self, j: int) -> Evaluation:
        i, improvements = j + 1, self.reading.improvements
        if i > self.read:
            return Evaluation(i, self.steps[j], self.values[j], j in self.missing)
        k = bisect_right(improvements, i)  # improvements up to and including i
        improved = bool(k) and improvements[k - 1] == i
        before = k - 1 if improved else k
        best_before = self.values[improvements[before - 1] - 1] if before else None
        return Evaluation(i, self.steps[j], self.values[j], j in self.missing, best_before, improved,
                          i <= self.warmup, self._streak(i, improvements[k - 1] if k else 0))

    def _streak(self, i: int, last_improvement: int) -> int:
        """The streak after evaluation ``i`` (es.states' reading): from the last improvement
        after warmup, else from the end of warmup; the last read evaluation's is the fold's own."""
        if i == self.read:
            return self.reading.final.streak
        return max(0, i - max(last_improvement, self.warmup))

    def __iter__(self) -> Iterator[Evaluation]:
        return map(self._at, range(len(self.steps)))

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(list(self))

    @property
    def missing_steps(self) -> list[int]:
        return [self.steps[j] for j in sorted(self.missing)]

    @property
    def non_finite(self) -> bool:
        """Is any value NaN or ±inf (a missing one included)?"""
        return bool(self.missing) or not math.isfinite(sum(self.values)) and not all(map(math.isfinite, self.values))

    def near_best(self) -> Iterator[Evaluation]:
        """The read evaluations that did not count yet came level with the best before them, or
        below it, or nearly: a superset, as the float margin (1e-12 of the value) is far wider than
        binary rounding; the caller decides in exact decimals. Between two improvements the best is
        one value, so a stretch none of whose values reaches it is skipped at C speed."""
        values, improvements = self.values, self.reading.improvements
        last = self.read - 1 if self.reading.final.reason == es.NON_FINITE_EVAL_LOSS else self.read
        for a, b in zip(improvements, improvements[1:] + [last + 1]):  # evaluations a+1 .. b-1
            if b - a < 2:
                continue
            best = values[a - 1]
            reach = best + 2e-12 * abs(best) + 1e-300
            stretch = values[a:b - 1]
            if min(stretch) > reach:
                continue
            for j, value in enumerate(stretch, a):
                if value <= reach:
                    yield self._at(j)

    def longest_streak(self) -> int:
        """The longest run of non-improving evaluations after warmup: each streak ends where the
        next improvement after warmup starts a new one, or at the last evaluation read."""
        w, read = self.warmup, self.read
        if read <= w:
            return 0
        starts = [w] + [i for i in self.reading.improvements if i > w]
        longest = max((b - 1 - a for a, b in zip(starts, starts[1:])), default=0)
        return max(longest, self.reading.final.streak, read - 1 - starts[-1])


class Columns(NamedTuple):
    """A history's eval rows as columns, in step order: what the rule and the chart read."""

    steps: Sequence[int]
    values: Sequence[float]
    missing: frozenset[int]  # 0-based positions of rows with no usable eval/loss (read as non-finite)


def eval_points(rows: Iterable[dict[str, Any]], *, total_steps: int | None = None,
                n_evals: int | None = None, eval_steps: int | None = None) -> list[tuple[int, float, bool]]:
    """(step, eval_loss, missing) for each eval row of ``/metrics``, in step order (``eval_columns``)."""
    steps, values, missing = eval_columns(rows, total_steps=total_steps, n_evals=n_evals, eval_steps=eval_steps)
    return [(step, value, j in missing) for j, (step, value) in enumerate(zip(steps, values))]


def eval_columns(rows: Iterable[dict[str, Any]], *, total_steps: int | None = None,
                 n_evals: int | None = None, eval_steps: int | None = None) -> Columns:
    """The eval rows of ``/metrics`` as columns, in step order.

    A row with ``eval/loss`` null or unreadable counts as a non-finite evaluation (the vendor does
    not say; a missing value is not evidence of a good one) and is flagged. A row without
    ``train/global_step`` gets the step docs/early-stopping.md §3 gives it.
    """
    columns = getattr(rows, "eval_columns", None)  # wire.Rows from the simulator: steps and values as is
    if columns is not None:
        steps, values = columns()
        # C-level checks (a 100,000-row history): every value a float, every step an int, in order
        if set(map(type, values)) <= {float} and set(map(type, steps)) <= {int}:
            return _in_step_order(steps, values, frozenset())
    steps, values, missing = [], [], set()
    for i, row in enumerate(r for r in rows if EVAL_KEY in r):
        value = row[EVAL_KEY]
        value, bad = (value, False) if type(value) is float else _number(value)
        if bad:
            missing.add(i)
        step = row.get(STEP_KEY)
        if type(step) is not int:
            if not isinstance(step, (int, float)) or isinstance(step, bool) or not math.isfinite(step):
                n = i + 1
                step = n * eval_steps if eval_steps else (
                    es.evaluation_step(n, total_steps, n_evals) if total_steps and n_evals else n)
            step = int(step)
        steps.append(step)
        values.append(value)
    return _in_step_order(steps, values, frozenset(missing))


def _in_step_order(steps: Sequence[int], values: Sequence[float], missing: frozenset[int]) -> Columns:
    """The columns sorted by step (stably: rows at one step keep their order), lists either way."""
    steps = steps if type(steps) is list else list(steps)
    values = values if type(values) is list else list(values)
    ordered = sorted(steps)
    if ordered == steps:
        return Columns(steps, values, missing)
    order = sorted(range(len(steps)), key=steps.__getitem__)
    return Columns(ordered, [values[j] for j in order], frozenset(k for k, j in enumerate(order) if j in missing))


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
    evaluations: Evaluations
    settings: es.Settings
    settings_source: str  # recorded | assumed_defaults | given
    enabled: bool | None  # was early stopping on for this job? None: not known
    final: es.State  # the replay's last state
    total_steps: int | None
    job: dict[str, Any] = field(default_factory=dict)

    # -- the replay --------------------------------------------------------------------------

    def step_of(self, i: int | None) -> int | None:
        return None if i is None else self.evaluations.steps[i - 1]

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
        steps = self.evaluations.steps  # in step order: the first evaluation at ``step``
        k = bisect_left(steps, step)
        return k + 1 if k < len(steps) and steps[k] == step else None

    @property
    def ended(self) -> bool:
        """Has the job reached a terminal status? (A saved history with no status counts as ended.)"""
        status = self.job.get("status")
        return status is None or status in TERMINAL_STATUSES

    @property
    def longest_streak(self) -> int:
        return self.evaluations.longest_streak()

    @cached_property
    def streak_steps(self) -> list[int]:
        """Steps of the current (or final) non-improving run after warmup."""
        return self.evaluations.steps[self.final.evals - self.final.streak:self.final.evals]

    @property
    def marked_streak(self) -> list[int]:
        """The streak a chart marks: the one that ended the run, or the current one while it runs."""
        return self.streak_steps if self.fired or not self.ended else []

    # -- cross-check: the replay against the server's verdict ----------------------------------

    def server_verdict(self) -> Verdict | None:
        """The server's early-stopping fields, when there is a verdict to check against."""
        if self.enabled is False or self.server_fired is None or not self.ended:
            return None  # while running, the fields and the history are read at different instants
        best_step = self.job.get("early_stopping_best_step")
        metric = self.job.get("early_stopping_best_metric")
        done = self.job.get("steps_completed")
        return Verdict(self.server_fired,
                       done if self.server_fired and isinstance(done, int) else None,
                       best_step if isinstance(best_step, int) else None,
                       metric if isinstance(metric, (int, float)) and not isinstance(metric, bool) else None,
                       has_best_metric="early_stopping_best_metric" in self.job)

    def replay_verdict(self) -> Verdict:
        return Verdict(self.final.stopped, self.replay_halt_step, self.replay_best_step, self.final.best_value)

    @cached_property
    def cross_check(self) -> CrossCheck:
        server, replayed = self.server_verdict(), self.replay_verdict()
        return CrossCheck(server, replayed, _differences(server, replayed) if server else ())

    @property
    def disagreements(self) -> tuple[str, ...]:
        """The fields where the replay and the server differ (the server's answer is shown as truth)."""
        return self.cross_check.differences

    # -- what-if -------------------------------------------------------------------------------

    @property
    def actual_steps(self) -> int | None:
        """Steps the job ran (None while it is still running)."""
        if not self.ended:
            return None
        done = self.job.get("steps_completed")
        if isinstance(done, int):
            return done
        if self.fired:
            return self.halt_step
        if self.total_steps is not None:
            return self.total_steps
        return self.evaluations.steps[-1] if self.evaluations else None

    @property
    def history_complete(self) -> bool:
        """Does the history hold every evaluation the job was meant to run?"""
        n_evals = self.job.get("n_evals")
        if isinstance(n_evals, int) and n_evals:
            return len(self.evaluations) >= n_evals
        return self.ended and not self.fired and self.job.get("status") in (None, "completed")

    def what_if(self, settings: es.Settings) -> WhatIf:
        """The recorded history replayed under ``settings``, against what really happened."""
        steps = self.evaluations.steps
        final = es.fold(self.evaluations.values, settings).final
        last = steps[-1] if steps else None

        def step(i: int | None) -> int | None:
            return None if i is None else steps[i - 1]

        if final.stopped:
            conclusive, run = True, step(final.halt_i)
            best = step(final.best_i) if final.best_i else run
            promoted = best
        else:
            # Without a halt the run goes on to its end, which the history shows only if complete.
            conclusive = self.history_complete
            run = (self.total_steps if self.total_steps is not None else last) if conclusive else None
            best, promoted = step(final.best_i), run
        actual = self.actual_steps
        return WhatIf(settings, final.stopped, final.reason if final.stopped else None,
                      step(final.halt_i) if final.stopped else None, final.halt_i if final.stopped else None,
                      best, final.best_i, final.best_value, promoted, run, actual,
                      None if run is None or actual is None else actual - run, conclusive, last,
                      self.total_steps)

    def sweep(self, settings: Iterable[es.Settings]) -> list[WhatIf]:
        return [self.what_if(s) for s in settings]

    @cached_property
    def default_rule(self) -> WhatIf | None:
        """For a job run without early stopping: what the server's default rule would have done."""
        return self.what_if(es.Settings()) if self.enabled is False else None

    def early_stopping(self) -> dict[str, Any]:
        """The contract's object (``docs/early-stopping.md`` §5), plus where the settings came from."""
        halt = self.halt_step
        streak = self.streak_steps
        total = self.total_steps
        check = self.cross_check
        extra: dict[str, Any] = {
            "n_evals": self.job.get("n_evals") if isinstance(self.job.get("n_evals"), int) else None,
            "job_status": self.job.get("status"),
            "cross_check": check.to_json(),
        }
        if self.default_rule is not None:
            extra["default_rule"] = self.default_rule.to_json()
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
            "replay_agrees": check.agrees,
            **extra,
        }


def early_stopping_on(job: dict[str, Any], sent: dict[str, Any] | None) -> bool | None:
    """Was early stopping on for this job? The settings ftctl sent say; else the server's fields
    (it tracks a best only for jobs with early stopping on); None: not known. The one definition,
    for the reading of a history and for the live view of a wait alike."""
    if sent is not None and "early_stopping_enabled" in sent:
        return bool(sent["early_stopping_enabled"])
    if job.get("early_stopped") is True or isinstance(job.get("early_stopping_best_step"), int):
        return True
    return None


def analyse(job: dict[str, Any], rows: Iterable[dict[str, Any]], *, sent: dict[str, Any] | None = None,
            override: es.Settings | None = None) -> Analysis:
    """Replay ``job``'s eval history under the settings it ran with (or ``override``)."""
    from ftctl.shapes import already_typed

    typed = already_typed("Job", job)  # the usual job: as it is, without pydantic
    if typed is None:
        from ftctl.models import typed_job

        typed = typed_job(job)  # a server's "0.42" for a number is read as 0.42; garbage as absent
    job = typed
    total = job.get("total_steps") if isinstance(job.get("total_steps"), int) else None
    columns = eval_columns(rows, total_steps=total, n_evals=job.get("n_evals"), eval_steps=job.get("eval_steps"))
    enabled = early_stopping_on(job, sent)
    if override is not None:
        settings, source = override, GIVEN
    elif sent is not None and enabled:
        settings = es.settings_from(sent.get("early_stopping_patience"), sent.get("early_stopping_min_delta"),
                                    sent.get("early_stopping_warmup_evals"))
        source = RECORDED
    else:
        settings, source = es.Settings(), ASSUMED
    evaluations, final = replay(columns, settings)
    return Analysis(evaluations, settings, source, enabled, final, total, dict(job))


def replay(columns: Columns, settings: es.Settings) -> tuple[Evaluations, es.State]:
    """Each evaluation with the rule's reading of it (``es.fold``, the one fold); the last state."""
    reading = es.fold(columns.values, settings)
    return Evaluations(columns, reading, settings.warmup_evals), reading.final


@dataclass(frozen=True)
class Verdict:
    """One answer to "did early stopping fire, where, and what was best"."""

    fired: bool
    halt_step: int | None
    best_step: int | None
    best_eval_loss: float | None
    has_best_metric: bool = True  # False: the server omitted early_stopping_best_metric

    def to_json(self) -> dict[str, Any]:
        return {"fired": self.fired, "halt_step": self.halt_step, "best_step": self.best_step,
                "best_eval_loss": self.best_eval_loss}


def _differences(server: Verdict, replayed: Verdict) -> tuple[str, ...]:
    found = []
    if server.fired != replayed.fired:
        found.append("fired")
    elif server.fired and server.halt_step is not None and server.halt_step != replayed.halt_step:
        found.append("halt_step")
    if server.best_step is not None and replayed.best_step is not None and server.best_step != replayed.best_step:
        found.append("best_step")
    if server.has_best_metric and server.best_eval_loss != replayed.best_eval_loss and not (
            server.best_eval_loss is None and not server.fired):  # R9: the server may omit it
        found.append("best_eval_loss")
    return tuple(found)


@dataclass(frozen=True)
class CrossCheck:
    server: Verdict | None  # None: nothing to check against (not enabled, still running, a raw history)
    replay: Verdict
    differences: tuple[str, ...]

    @property
    def applicable(self) -> bool:
        return self.server is not None

    @property
    def agrees(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {"applicable": self.applicable, "agrees": self.agrees if self.applicable else None,
                "differences": list(self.differences),
                "server": self.server.to_json() if self.server else None, "replay": self.replay.to_json()}


@dataclass(frozen=True)
class WhatIf:
    """A history replayed under other settings, compared with what happened."""

    settings: es.Settings
    fired: bool
    reason: str | None
    halt_step: int | None
    halt_eval: int | None
    best_step: int | None  # for a halt with no finite best: the halt step (docs/early-stopping.md §3)
    best_eval: int | None
    best_eval_loss: float | None
    promoted_step: int | None  # the best step if it fired, else the last step
    steps_run: int | None  # None: the history ends before this rule would have decided
    actual_steps: int | None  # what the job really ran (None: still running)
    steps_saved: int | None  # actual - would-have-run: > 0 saved, < 0 cost more
    conclusive: bool
    history_end_step: int | None
    total_steps: int | None

    def to_json(self) -> dict[str, Any]:
        return {"patience": self.settings.patience, "min_delta": self.settings.min_delta,
                "warmup_evals": self.settings.warmup_evals, "fired": self.fired, "reason": self.reason,
                "halt_step": self.halt_step, "halt_eval": self.halt_eval, "best_step": self.best_step,
                "best_eval": self.best_eval, "best_eval_loss": self.best_eval_loss,
                "promoted_step": self.promoted_step, "steps_run": self.steps_run,
                "actual_steps": self.actual_steps, "steps_saved": self.steps_saved,
                "conclusive": self.conclusive, "history_end_step": self.history_end_step,
                "total_steps": self.total_steps}


def check_settings(patience: object, min_delta: object, warmup_evals: object) -> es.Settings:
    """Settings for a replay, checked with the same rules and wording as at create.

    A replay needs no validation file and its n_evals is the history's, so those two create-time
    requirements are met here on purpose.
    """
    p = es.DEFAULT_PATIENCE if patience is None else patience
    w = es.DEFAULT_WARMUP_EVALS if warmup_evals is None else warmup_evals
    es.check_parameters(enabled=True, patience=p, min_delta=min_delta, warmup_evals=w,
                        validation_file="(history)",
                        n_evals=(p + w + 1) if isinstance(p, int) and isinstance(w, int) else None)
    return es.settings_from(p, min_delta, w)  # type: ignore[arg-type]
