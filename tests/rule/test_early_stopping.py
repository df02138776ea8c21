"""The rule of docs/early-stopping.md §2-3: the public cases of §7 and §7.4, and §6.4's invariants."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ftctl import early_stopping as es
from ftctl.errors import InvalidInput

NAN, INF = float("nan"), float("inf")

# (case, eval_loss, P, D, W, stopped, reason, halt_eval, best_eval, best_metric, evals_done, refunded)
CASES = [
    (1, [2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9, 0.8, 0.7, 0.6], 2, 0.0, 1, True, "patience_exhausted", 6, 4, 1.0, 6, 48),
    (2, [1.0, 0.9, 0.8, 0.7, 0.6], 2, 0.0, 1, False, None, None, 5, 0.6, 5, 0),
    (3, [1.0, 0.5, 0.5, 0.5, 0.5], 2, 0.0, 0, True, "patience_exhausted", 4, 2, 0.5, 4, 12),
    (4, [6.0, 5.0, 4.0, 4.0, 3.0, 3.0], 1, 0.0, 0, True, "patience_exhausted", 4, 3, 4.0, 4, 24),
    (6, [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5], 2, 0.0, 0, True, "patience_exhausted", 5, 3, 8.0, 5, 48),
    (12, [1.0, 0.8, NAN, 0.5, 0.4], 2, 0.0, 1, True, "non_finite_eval_loss", 3, 2, 0.8, 3, 24),
    (15, [NAN, 1.0, 0.9, 0.8], 2, 0.0, 1, True, "non_finite_eval_loss", 1, None, None, 1, 36),
    (19, [1.0, 1.1, 1.2, 0.9, 0.8], 2, 0.0, 1, True, "patience_exhausted", 3, 1, 1.0, 3, 24),
    (24, [1.0, 0.9, 0.8, 0.85, 0.86], 2, 0.0, 1, True, "patience_exhausted", 5, 3, 0.8, 5, 0),
    (30, [1.0, 0.9, 0.8, 0.85], 2, 0.0, 1, False, None, None, 3, 0.8, 4, 0),
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_public_cases(case):
    _, xs, p, d, w, stopped, reason, halt, best, metric, done, refunded = case
    settings = es.Settings(p, d, w)
    state = es.replay(xs, settings)
    steps = [12 * i for i in range(1, len(xs) + 1)]
    out = es.outcome(state, steps, total_steps=12 * len(xs), n_epochs=1)
    assert (state.stopped, state.reason, state.halt_i, state.best_i) == (stopped, reason, halt, best)
    assert out.early_stopped == stopped
    assert out.best_metric == metric
    assert out.evals_completed == done
    assert out.steps_refunded == refunded
    # best step is the halt step when nothing finite was recorded (case 15)
    assert out.best_step == (12 * best if best else 12 * halt)
    # the promoted model: best step if stopped, else the last step (A9)
    assert out.promoted_step == ((12 * best if best else 12 * halt) if stopped else 12 * len(xs))


def test_worked_example_job_fields():
    """The docs' job: 5 epochs of 24 steps, 10 evals, halt at 72, best 0.4213 at 48."""
    xs = [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47, 0.40, 0.39, 0.38, 0.37]
    steps = [es.evaluation_step(i, 120, 10) for i in range(1, 11)]
    out = es.outcome(es.replay(xs, es.Settings()), steps, total_steps=120, n_epochs=5)
    assert (out.steps_completed, out.evals_completed, out.epochs_completed) == (72, 6, 3)
    assert (out.best_step, out.best_metric, out.steps_refunded) == (48, 0.4213, 48)


def test_folding_one_at_a_time_equals_replay():
    xs = [2.0, 1.5, 1.2, 1.0, 1.05, 1.1, 0.9]
    state = es.INITIAL
    for x in xs:
        state = es.advance(state, x, es.Settings())
    assert state == es.replay(xs, es.Settings())
    assert list(state.streak_evals) == [5, 6]


def test_equal_to_min_delta_is_not_an_improvement():
    # 1.0 -> 0.75 is exactly 0.25: strict test, no improvement (A1)
    state = es.replay([1.0, 0.75, 0.8, 0.9], es.Settings(2, 0.25, 0))
    assert (state.halt_i, state.best_i) == (3, 1)


def test_exact_decimal_comparison_at_binary_boundary():
    # binary64: 0.14 - 0.04 = 0.10000000000000002 > 0.1; in exact decimals it is equal (A2)
    state = es.replay([0.14, 0.04, 0.05], es.Settings(2, 0.1, 0))
    assert (state.stopped, state.best_i) == (True, 1)


def test_threshold_is_best_minus_min_delta():
    state = es.replay([1.0, 1.2], es.Settings(3, 0.05, 1))
    assert es.improvement_threshold(state, es.Settings(3, 0.05, 1)) == Decimal("0.95")
    assert es.improvement_threshold(es.INITIAL, es.Settings()) is None


def test_values_after_halt_are_ignored():
    state = es.replay([1.0, NAN], es.Settings())
    assert es.advance(state, 0.1, es.Settings()) is state


def test_evaluation_schedule_rounds_half_to_even():
    assert [es.evaluation_step(i, 120, 10) for i in (1, 6, 10)] == [12, 72, 120]
    assert es.evaluation_step(1, 5, 2) == 2  # 2.5 -> 2
    assert es.evaluation_step(3, 5, 2) == 8  # 7.5 -> 8


# --- the validation cases of docs/early-stopping.md §1 ---------------------------------------------------------------------

VALIDATION_ERRORS = [
    ("V2", dict(patience=2, warmup_evals=1, n_evals=3),
     "Early stopping requires n_evals >= patience + warmup_evals + 1 = 4 (got n_evals=3)"),
    ("V3", dict(n_evals=0), "Early stopping requires n_evals >= patience + warmup_evals + 1 = 4 (got n_evals=0)"),
    ("V4", dict(patience=2, warmup_evals=1, n_evals=10, validation_file=None),
     "Early stopping requires a validation file (validation_file)."),
    ("V5", dict(patience=0, n_evals=10), "early_stopping_patience must be >= 1 (got 0)"),
    ("V6", dict(warmup_evals=-1, n_evals=10), "early_stopping_warmup_evals must be >= 0 (got -1)"),
    ("V7", dict(min_delta=-0.01, n_evals=10), "early_stopping_min_delta must be >= 0 (got -0.01)"),
    ("V8", dict(min_delta=NAN, n_evals=10), "early_stopping_min_delta must be >= 0 (got nan)"),
    ("V9", dict(min_delta=INF, n_evals=10), "early_stopping_min_delta must be finite (got inf)"),
    ("V10a", dict(patience=2.5, n_evals=10), "early_stopping_patience must be an integer (got 2.5)"),
    ("V10b", dict(patience=True, n_evals=10), "early_stopping_patience must be an integer (got True)"),
]


@pytest.mark.parametrize("name,kwargs,message", VALIDATION_ERRORS, ids=[v[0] for v in VALIDATION_ERRORS])
def test_validation_errors(name, kwargs, message):
    kwargs = {"validation_file": "file-v", **kwargs}
    with pytest.raises(InvalidInput) as err:
        es.check_parameters(enabled=True, **kwargs)
    assert err.value.message == message


def test_validation_accepts_v1_v11_v12_and_warns_where_nothing_can_be_refunded():
    assert es.check_parameters(enabled=True, patience=2, min_delta=0.0, warmup_evals=1,
                               validation_file="f", n_evals=4) == []
    (warning,) = es.check_parameters(enabled=True, patience=2, warmup_evals=0, validation_file="f", n_evals=3)
    assert "earliest possible halt is the final evaluation" in warning
    assert es.check_parameters(enabled=True, patience=1, warmup_evals=8, validation_file="f", n_evals=10) == []


def test_v13_disabled_settings_are_not_validated_but_warned():
    (warning,) = es.check_parameters(enabled=False, patience=0, n_evals=0)
    assert "no effect" in warning and "patience" in warning


def test_v9_min_delta_inf_still_works_in_the_fold():
    state = es.replay([1.0, 0.5, 0.1, 0.01], es.Settings(2, INF, 1))
    assert (state.best_i, state.halt_i) == (1, 3)


# --- docs/early-stopping.md §4 invariants, property-tested --------------------------------------------------------------

losses = st.one_of(
    st.sampled_from([0.5, 0.4, 0.3, 0.25, 0.2, 0.14, 0.1, 0.04, 1.0, 0.75]),
    st.floats(min_value=-10, max_value=10, allow_nan=False, allow_infinity=False),
    st.sampled_from([NAN, INF, -INF]),
)
histories = st.lists(losses, min_size=0, max_size=25)
params = st.tuples(st.integers(1, 5), st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.25, 0.375, 1.0]),
                   st.integers(0, 4)).map(lambda t: es.Settings(*t))


def _halt_or_end(state: es.State, n: int) -> int:
    return state.halt_i if state.stopped else n


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_1_patience_halt_position(xs, s):
    state = es.replay(xs, s)
    if state.reason == es.PATIENCE_EXHAUSTED:
        assert state.halt_i == max(state.best_i, s.warmup_evals) + s.patience
        assert state.halt_i >= max(s.warmup_evals, 1) + s.patience


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_2_null_best_iff_first_eval_non_finite(xs, s):
    state = es.replay(xs, s)
    no_best = state.best_value is None and state.evals > 0
    assert no_best == (state.reason == es.NON_FINITE_EVAL_LOSS and state.halt_i == 1)


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_3_nothing_after_best_beat_it_by_more_than_delta(xs, s):
    state = es.replay(xs, s)
    if state.best_i is None:
        return
    best = es.exact(xs[state.best_i - 1])
    for x in xs[state.best_i:_halt_or_end(state, len(xs))]:
        if math.isfinite(x):
            assert best - es.exact(x) <= es.exact(s.min_delta)


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_4_with_zero_delta_best_is_first_minimum(xs, s):
    s = es.Settings(s.patience, 0.0, s.warmup_evals)
    state = es.replay(xs, s)
    seen = [x for x in xs[:_halt_or_end(state, len(xs))] if math.isfinite(x)]
    if seen:
        first_min = xs.index(min(seen)) + 1
        assert state.best_i == first_min


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_5_values_after_halt_are_irrelevant(xs, s):
    state = es.replay(xs, s)
    if state.stopped:
        assert es.replay(xs[:state.halt_i], s) == state


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_invariant_6_warmup_zero_and_one_are_identical(xs, s):
    s0 = es.Settings(s.patience, s.min_delta, 0)
    s1 = es.Settings(s.patience, s.min_delta, 1)
    a, b = es.replay(xs, s0), es.replay(xs, s1)
    assert (a.stopped, a.reason, a.halt_i, a.best_i, a.best_value) == (
        b.stopped, b.reason, b.halt_i, b.best_i, b.best_value)


@given(histories, params, st.integers(0, 3), st.integers(0, 3))
@hsettings(max_examples=1500, deadline=None)
def test_invariant_7_raising_patience_or_warmup_never_halts_earlier(xs, s, more_p, more_w):
    higher = es.Settings(s.patience + more_p, s.min_delta, s.warmup_evals + more_w)
    low, high = es.replay(xs, s), es.replay(xs, higher)
    assert _halt_or_end(high, len(xs) + 1) >= _halt_or_end(low, len(xs) + 1)


# The float fast path of the improvement test must agree with the exact-decimal definition (A2),
# above all at the boundary, where binary and decimal arithmetic disagree.
decimals = st.decimals(min_value=-100, max_value=100, places=3, allow_nan=False, allow_infinity=False).map(float)
anything = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def near_boundary(draw):
    best, delta = draw(decimals), abs(draw(decimals))
    value = best - delta
    for _ in range(draw(st.integers(0, 2))):
        value = math.nextafter(value, draw(st.sampled_from([math.inf, -math.inf])))
    return best, value, delta


@given(st.one_of(near_boundary(), st.tuples(anything, anything, st.floats(0, 1e300, allow_nan=False))))
@hsettings(max_examples=3000, deadline=None)
def test_fast_improvement_test_equals_exact_decimals(triple):
    best, value, delta = triple
    exact_answer = es.exact_difference(best, value) > es.exact(delta)
    assert es.improves(best, value, delta) == exact_answer
