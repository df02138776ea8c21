"""The early-stopping rule, written once (``docs/early-stopping.md`` §1-3).

The decision procedure is a left fold over the evaluations' eval_loss: ``advance`` consumes one
evaluation, so the simulator feeds it as a run progresses, and ``trail``/``replay`` run it over a
whole history (metrics, explanations, what-if, cross-check). No I/O here; property tests pin the
invariants of §4.

Readings chosen where the vendor text is ambiguous (§6): a decrease must be *strictly* more than
min_delta (R1), compared in exact decimals of the values as reported (R2); best moves only on a
counted improvement (R3); the first finite evaluation always improves (R4); warmup evaluations may
set the best but never count toward patience (R5, R6); any NaN/±inf halts at once (R7); the run
stops on the P-th non-improving evaluation (R8).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple, Sequence

from ftctl.errors import InvalidInput

if TYPE_CHECKING:
    from decimal import Context, Decimal

PATIENCE_EXHAUSTED = "patience_exhausted"
NON_FINITE_EVAL_LOSS = "non_finite_eval_loss"

DEFAULT_PATIENCE = 2
DEFAULT_MIN_DELTA = 0.0
DEFAULT_WARMUP_EVALS = 1

@lru_cache(maxsize=None)
def _exact_context() -> Context:
    """Floats print with at most 17 significant digits between 1e-324 and 1e308, so a difference of
    two of them needs at most ~650 digits: with this precision Decimal subtraction is exact.
    (``decimal`` is imported only when a comparison comes near min_delta: most reads never do.)"""
    from decimal import Context

    return Context(prec=1000)


def exact(value: float) -> Decimal:
    """The value exactly as reported (R2): the shortest decimal that round-trips the float."""
    from decimal import Decimal

    return Decimal(repr(float(value)))


def exact_difference(a: float, b: float) -> Decimal:
    """``a − b`` in exact decimals of the values as reported (R2): never rounded."""
    return _exact_context().subtract(exact(a), exact(b))


class Settings(NamedTuple):  # named tuples here: the rule is on every read's path, and cheap to define
    """P, D and W, already validated (``check_parameters``). Defaults are the server's."""

    patience: int = DEFAULT_PATIENCE
    min_delta: float = DEFAULT_MIN_DELTA
    warmup_evals: int = DEFAULT_WARMUP_EVALS


class State(NamedTuple):
    """The fold's accumulator after ``evals`` evaluations (immutable; a tuple, as it is made once
    per evaluation and must be cheap).

    ``streak`` counts the current run of non-improving post-warmup evaluations; they are always
    the last ``streak`` evaluations, so their indices need not be stored.
    """

    evals: int = 0
    best_i: int | None = None
    best_value: float | None = None
    streak: int = 0
    improved: bool = False  # did evaluation ``evals`` count as an improvement?
    stopped: bool = False
    reason: str | None = None
    halt_i: int | None = None

    @property
    def streak_evals(self) -> range:
        """1-based indices of the current non-improving run."""
        return range(self.evals - self.streak + 1, self.evals + 1)


INITIAL = State()


def improves(best: float, value: float, min_delta: float) -> bool:
    """``best − value > min_delta`` in exact decimals of the values as reported (R1, R2).

    Decimals are needed only near the boundary: elsewhere binary arithmetic gives the same answer,
    since its error (under 1e-15 of the magnitudes involved) is far below the margin checked here.
    With min_delta 0 the float comparison is already exact: shortest reprs preserve order.
    """
    if min_delta == 0:
        return value < best
    gap = best - value - min_delta
    if abs(gap) > 1e-13 * (abs(best) + abs(value) + min_delta) + 1e-300:
        return gap > 0
    return exact_difference(best, value) > exact(min_delta)


class Reading(NamedTuple):
    """The rule's whole reading of a history, in two pieces: the evaluations that counted as
    improvements, and the last state. Everything else about each evaluation follows from these
    (its best before, its streak: ``trail``), so a 100,000-evaluation history costs one list of
    the (few) improvements instead of 100,000 states."""

    improvements: list[int]  # 1-based indices, ascending
    final: State


def fold(values: Iterable[float], settings: Settings, state: State = INITIAL) -> Reading:
    """THE rule: consume ``values`` after ``state``, up to and including a halt (values after a halt
    are irrelevant, §4.5, and not read). ``advance``, ``trail`` and ``replay`` are this fold.

    One tight loop, nothing made per evaluation: a streak is the distance from where it started
    (the last post-warmup improvement, else the end of warmup), so the loop keeps only the
    evaluation at which the current streak reaches patience, and a halt is ``i == deadline``.
    """
    evals, best_i, best_value, streak, _, stopped, _, _ = state
    if stopped:
        return Reading([], state)
    values = values if type(values) is list else list(values)
    if not values:
        return Reading([], state)
    patience, delta, warmup = settings.patience, settings.min_delta, settings.warmup_evals
    cut = _finite_prefix(values)  # R7 is decided here, at C speed: the loop sees finite values only
    start = max(evals - streak, warmup)  # the evaluation after which the current streak counts
    deadline = start + patience
    best = math.inf if best_value is None else best_value  # R4: anything finite is below it
    improvements: list[int] = []
    i = evals
    for value in (values if cut == len(values) else values[:cut]):
        i += 1
        # Compared with the previous best *before* updating it (§8: updating first is the ordering bug other libraries shipped).
        if value < best if delta == 0 else (best_i is None or improves(best, value, delta)):
            best_i, best = i, value
            improvements.append(i)
            if i > warmup:  # warmup may set the best, never counts (R5, R6)
                deadline = i + patience
        elif i >= deadline:  # R8: stop on the P-th non-improving evaluation after warmup
            return Reading(improvements, State(i, best_i, best, i - deadline + patience, False, True,
                                               PATIENCE_EXHAUSTED, i))
    start = deadline - patience
    kept = None if best_i is None else best
    if cut < len(values):  # R7: a NaN/±inf halts at once, warmup or not; the streak stays as it was
        return Reading(improvements, State(i + 1, best_i, kept, max(0, i - start), False, True,
                                           NON_FINITE_EVAL_LOSS, i + 1))
    return Reading(improvements, State(i, best_i, kept, max(0, i - start), bool(improvements) and improvements[-1] == i))


def _finite_prefix(values: list[float]) -> int:
    """How many values come before the first NaN/±inf (all of them: ``len``). A sum is non-finite
    whenever a term is, so the common case is one C-level pass; only then (or on an overflow) scan."""
    if math.isfinite(sum(values)):
        return len(values)
    isfinite = math.isfinite
    for k, value in enumerate(values):
        if not isfinite(value):
            return k
    return len(values)


def advance(state: State, value: float, settings: Settings) -> State:
    """Consume one evaluation (the simulator feeds a run this way, a wait follows one). After a
    halt, further values are irrelevant (§4.5) and ignored: the state is returned as it is."""
    return fold((value,), settings, state).final


def states(values: Sequence[float], reading: Reading, settings: Settings) -> Iterator[State]:
    """The state after each evaluation of a history read from ``INITIAL`` (``reading`` is
    ``fold(values, settings)``): the fold's own states, rebuilt from its improvements."""
    final, warmup = reading.final, settings.warmup_evals
    marks = iter(reading.improvements)
    mark = next(marks, None)
    best_i = best_value = None
    start = warmup
    for i in range(1, final.evals if final.stopped else final.evals + 1):
        improved = i == mark
        if improved:
            best_i, best_value, mark = i, values[i - 1], next(marks, None)
            if i > warmup:
                start = i
        yield State(i, best_i, best_value, i - start if i > start else 0, improved)
    if final.stopped:
        yield final


def trail(values: Iterable[float], settings: Settings) -> Iterator[State]:
    """The state after each evaluation, up to and including the halt."""
    values = values if type(values) is list else list(values)
    return states(values, fold(values, settings), settings)


def replay(values: Iterable[float], settings: Settings) -> State:
    """The decision over a whole history."""
    return fold(values, settings).final


def improvement_threshold(state: State, settings: Settings) -> Decimal | None:
    """What the next evaluation must be strictly below to count (None: anything finite counts)."""
    if state.best_value is None:
        return None
    return exact_difference(state.best_value, settings.min_delta)


def evaluation_step(i: int, total_steps: int, n_evals: int) -> int:
    """Step of evaluation ``i`` when evenly spaced: ``round(i × total_steps / n_evals)`` (§3).

    Exact integer arithmetic, rounding half to even like Python's ``round``, as the contract writes it.
    """
    q, r = divmod(i * total_steps, n_evals)
    if 2 * r > n_evals or (2 * r == n_evals and q % 2):
        return q + 1
    return q


class Outcome(NamedTuple):
    """The job fields that follow from a decision (§3)."""

    early_stopped: bool
    reason: str | None
    halt_step: int | None
    steps_completed: int
    evals_completed: int
    epochs_completed: int
    steps_refunded: int
    best_step: int | None  # for an early-stopped job with no finite best: the halt step
    best_metric: float | None
    promoted_step: int


def outcome(state: State, steps: Sequence[int], total_steps: int, n_epochs: int) -> Outcome:
    """Derived fields for a run whose evaluation ``i`` happened at ``steps[i-1]``."""
    best_step = steps[state.best_i - 1] if state.best_i else None
    if state.stopped:
        halt_step = steps[state.halt_i - 1]
        return Outcome(
            early_stopped=True,
            reason=state.reason,
            halt_step=halt_step,
            steps_completed=halt_step,
            evals_completed=state.halt_i,
            epochs_completed=halt_step * n_epochs // total_steps if total_steps else 0,
            steps_refunded=total_steps - halt_step,
            best_step=best_step if best_step is not None else halt_step,
            best_metric=state.best_value,
            promoted_step=best_step if best_step is not None else halt_step,
        )
    return Outcome(
        early_stopped=False,
        reason=None,
        halt_step=None,
        steps_completed=total_steps,
        evals_completed=state.evals,
        epochs_completed=n_epochs,
        steps_refunded=0,
        best_step=best_step,  # the tracked best (R9); the final model is the last step
        best_metric=state.best_value,
        promoted_step=total_steps,
    )


# --- §1: parameters, checked before anything is sent (and by the simulator, as the server) ---


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_parameters(
    *,
    enabled: bool,
    patience: object = None,
    min_delta: object = None,
    warmup_evals: object = None,
    validation_file: str | None = None,
    n_evals: int | None = None,
) -> list[str]:
    """Raise ``InvalidInput`` with the SDK's wording, or return warnings (§1).

    ``None`` means "not set": the server's default applies, before the n_evals check (§1).
    """
    given = [name for name, value in (("patience", patience), ("min_delta", min_delta),
                                      ("warmup_evals", warmup_evals)) if value is not None]
    if not enabled:
        if given:
            return [f"early stopping is not enabled, so {', '.join(given)} "
                    "has no effect (add --early-stopping)"]
        return []
    p = DEFAULT_PATIENCE if patience is None else patience
    w = DEFAULT_WARMUP_EVALS if warmup_evals is None else warmup_evals
    d = DEFAULT_MIN_DELTA if min_delta is None else min_delta
    if not _is_int(p):
        raise InvalidInput(f"early_stopping_patience must be an integer (got {p!r})")
    if not _is_int(w):
        raise InvalidInput(f"early_stopping_warmup_evals must be an integer (got {w!r})")
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise InvalidInput(f"early_stopping_min_delta must be a number (got {d!r})")
    if p < 1:
        raise InvalidInput(f"early_stopping_patience must be >= 1 (got {p})")
    if w < 0:
        raise InvalidInput(f"early_stopping_warmup_evals must be >= 0 (got {w})")
    if not d >= 0:  # also catches NaN, whose comparisons are all false (V8)
        raise InvalidInput(f"early_stopping_min_delta must be >= 0 (got {d})")
    if math.isinf(d):
        raise InvalidInput(f"early_stopping_min_delta must be finite (got {d})")
    if not validation_file:
        raise InvalidInput("Early stopping requires a validation file (validation_file).")
    n = 0 if n_evals is None else n_evals
    if n < p + w + 1:
        raise InvalidInput(
            "Early stopping requires n_evals >= patience + warmup_evals + 1 = "
            f"{p + w + 1} (got n_evals={n})")
    if w == 0 and n == p + 1:
        return [f"with warmup_evals 0 and n_evals {n} = patience + 1, the earliest possible halt "
                "is the final evaluation, so no steps can be refunded"]
    return []


def settings_from(patience: int | None, min_delta: float | None, warmup_evals: int | None) -> Settings:
    """Settings with the server's defaults for whatever was not set."""
    return Settings(
        DEFAULT_PATIENCE if patience is None else patience,
        DEFAULT_MIN_DELTA if min_delta is None else float(min_delta),
        DEFAULT_WARMUP_EVALS if warmup_evals is None else warmup_evals,
    )
