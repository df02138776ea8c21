"""The fused fold (``es.fold``, one loop that keeps only the improvements) is the rule read one
evaluation at a time: the same states, evaluation by evaluation, as the step-by-step fold written
out below from docs/early-stopping.md §2 (the form ``advance`` had before the fold was fused), on
random histories with NaN/±inf, warmup, and min_delta boundaries decided in exact decimals."""

from __future__ import annotations

import math
from decimal import Context, Decimal, localcontext

from hypothesis import example, given, settings as hsettings, strategies as st

from ftctl import early_stopping as es

NAN, INF = float("nan"), float("inf")


def step_by_step(state: es.State, value: float, s: es.Settings) -> es.State:
    """§2 literally: one evaluation, one new state, the comparison done in exact decimals."""
    evals, best_i, best_value, streak, _, stopped, _, _ = state
    if stopped:
        return state
    i = evals + 1
    if not math.isfinite(value):
        return es.State(i, best_i, best_value, streak, False, True, es.NON_FINITE_EVAL_LOSS, i)
    with localcontext(Context(prec=2000)):  # exact: Decimal's default 28 digits would round 0.25 + 3e-124
        improved = best_value is None or (Decimal(repr(best_value)) - Decimal(repr(value))
                                          > Decimal(repr(s.min_delta)))
    if improved:
        best_i, best_value = i, value
    if i <= s.warmup_evals:
        return es.State(i, best_i, best_value, 0, improved)
    streak = 0 if improved else streak + 1
    if streak >= s.patience:
        return es.State(i, best_i, best_value, streak, False, True, es.PATIENCE_EXHAUSTED, i)
    return es.State(i, best_i, best_value, streak, improved)


def reference_trail(xs: list[float], s: es.Settings) -> list[es.State]:
    out, state = [], es.INITIAL
    for x in xs:
        state = step_by_step(state, x, s)
        out.append(state)
        if state.stopped:
            break
    return out


# Values on a 0.05 grid with min_delta on the same grid: many decreases land exactly on min_delta,
# where binary arithmetic and exact decimals disagree (0.3 - 0.25 is not 0.05 in floats).
grid = st.integers(0, 40).map(lambda k: float(Decimal(k) * Decimal("0.05")))
losses = st.one_of(grid, grid, st.floats(-5, 5, allow_nan=False, allow_infinity=False),
                   st.sampled_from([NAN, INF, -INF, 0.14, 0.04, 0.1, 1e308, -1e308]))
histories = st.lists(losses, max_size=40)
params = st.tuples(st.integers(1, 6), st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.25, 0.3, 1e-17]),
                   st.integers(0, 5)).map(lambda t: es.Settings(*t))


@given(histories, params)
@hsettings(max_examples=3000, deadline=None)
@example([0.25, -3.066255821131941e-124], es.Settings(1, 0.25, 0))  # a decrease past min_delta by 3e-124
def test_fused_fold_is_the_step_by_step_fold(xs, s):
    expected = reference_trail(xs, s)
    assert list(es.trail(xs, s)) == expected
    reading = es.fold(xs, s)
    assert reading.final == (expected[-1] if expected else es.INITIAL)
    assert reading.improvements == [state.evals for state in expected if state.improved]
    assert es.replay(xs, s) == reading.final


@given(histories, params, st.integers(0, 40))
@hsettings(max_examples=2000, deadline=None)
def test_folding_in_two_parts_or_one_at_a_time_is_folding_at_once(xs, s, cut):
    at_once = es.fold(xs, s).final
    first = es.fold(xs[:cut], s)
    assert es.fold(xs[cut:], s, first.final).final == at_once
    state = es.INITIAL
    for x in xs:
        state = es.advance(state, x, s)
    assert state == at_once


def test_a_long_flat_history_halts_at_the_patience_th_evaluation_after_warmup():
    s = es.Settings(50_000, 0.0, 3)
    reading = es.fold([1.0] + [2.0] * 100_000, s)
    assert reading.improvements == [1]
    assert (reading.final.halt_i, reading.final.streak, reading.final.reason) == (50_003, 50_000, es.PATIENCE_EXHAUSTED)


def test_an_overflowing_sum_is_not_mistaken_for_a_non_finite_value():
    xs = [1e308, 1e308, 1e308, 0.5]
    assert es.replay(xs, es.Settings(5, 0.0, 0)) == reference_trail(xs, es.Settings(5, 0.0, 0))[-1]
