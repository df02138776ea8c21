"""A history read as columns (``analysis.Evaluations``) is the history read evaluation by evaluation:
every Evaluation, the longest streak, the near-misses of min_delta the explanation names, and the
points the markdown chart keeps are what the per-evaluation reading (each state of ``es.trail``)
gives, on random histories with NaN/±inf, missing values, warmup and unread evaluations after a halt.
And ``metrics`` on a simulator job reads it without importing pydantic."""

from __future__ import annotations

import math
import subprocess
import sys
from decimal import Decimal

from hypothesis import given, settings as hsettings, strategies as st

from ftctl import early_stopping as es
from ftctl.analysis import Columns, Evaluation, replay
from ftctl.output import markdown

NAN, INF = float("nan"), float("inf")
grid = st.integers(0, 30).map(lambda k: float(Decimal(k) * Decimal("0.05")))
losses = st.one_of(grid, grid, grid, st.floats(-3, 3, allow_nan=False, allow_infinity=False),
                   st.sampled_from([NAN, INF, -INF]))
params = st.tuples(st.integers(1, 6), st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.25]),
                   st.integers(0, 4)).map(lambda t: es.Settings(*t))


def history(values: list[float], missing: set[int]) -> Columns:
    missing = {j for j in missing if j < len(values)}
    values = [NAN if j in missing else v for j, v in enumerate(values)]
    return Columns([10 * (j + 1) for j in range(len(values))], values, frozenset(missing))


def per_evaluation(columns: Columns, s: es.Settings) -> list[Evaluation]:
    """The reading before columns: one Evaluation per state of the trail, the rest unread."""
    out, before = [], es.INITIAL
    for j, after in enumerate(es.trail(columns.values, s)):
        out.append(Evaluation(after.evals, columns.steps[j], columns.values[j], j in columns.missing,
                              before.best_value, after.improved, after.evals <= s.warmup_evals, after.streak))
        before = after
    out += [Evaluation(j + 1, columns.steps[j], columns.values[j], j in columns.missing)
            for j in range(len(out), len(columns.steps))]
    return out


histories = st.tuples(st.lists(losses, max_size=45), st.sets(st.integers(0, 44), max_size=2))


@given(histories, params)
@hsettings(max_examples=1500, deadline=None)
def test_columns_are_the_per_evaluation_reading(h, s):
    columns = history(*h)
    evaluations, final = replay(columns, s)
    expected = per_evaluation(columns, s)
    assert repr(list(evaluations)) == repr(expected)  # repr: NaN equals NaN
    assert repr([evaluations[j] for j in range(-len(expected), len(expected))]) == repr(expected + expected)
    assert repr(evaluations[3:9]) == repr(expected[3:9])
    assert evaluations.longest_streak() == max((e.streak for e in expected if e.warmup is False), default=0)
    assert evaluations.missing_steps == [e.step for e in expected if e.missing]
    assert evaluations.non_finite == any(not math.isfinite(e.eval_loss) for e in expected)
    near = {e.eval for e in evaluations.near_best()}
    named = {e.eval for e in expected if e.improved is False and e.best_before is not None
             and math.isfinite(e.eval_loss) and (es.exact_difference(e.best_before, e.eval_loss) > 0
                                                 or es.exact_difference(e.best_before, e.eval_loss) == es.exact(s.min_delta))}
    assert named <= near  # every evaluation the explanation must name is offered to it


class _Analysis:
    def __init__(self, evaluations, best, halt):
        self.evaluations, self._best, self._halt = evaluations, best, halt
        self.best_step, self.halt_step = best, halt

    def eval_at(self, step):
        return next((e.eval for e in self.evaluations if e.step == step), None)


def points_per_evaluation(a, max_points: int) -> list[int]:
    """markdown.points as it read each Evaluation before the columns."""
    evaluations = a.evaluations
    n = len(evaluations)
    if n <= max_points:
        return list(range(n))
    keep = {0, n - 1}
    for step in (a.best_step, a.halt_step):
        at = a.eval_at(step)
        if at is not None:
            keep.add(at - 1)
    buckets = (max_points - len(keep)) // 2
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        finite = [i for i in range(lo, hi) if math.isfinite(evaluations[i].eval_loss)]
        if not finite:
            keep.add(lo)
            continue
        keep.add(min(finite, key=lambda i: evaluations[i].eval_loss))
        keep.add(max(finite, key=lambda i: evaluations[i].eval_loss))
    return sorted(keep)[:max_points] if len(keep) > max_points else sorted(keep)


@given(st.lists(st.one_of(grid, st.sampled_from([NAN, INF, -INF, 0.0, -0.0])), min_size=1, max_size=200),
       st.integers(4, 30))
@hsettings(max_examples=500, deadline=None)
def test_the_markdown_chart_keeps_the_same_points(values, max_points):
    evaluations, final = replay(history(values, set()), es.Settings(1000, 0.0, 1))
    a = _Analysis(evaluations, evaluations.steps[len(values) // 3], None)
    assert markdown.points(a, max_points) == points_per_evaluation(a, max_points)


def test_metrics_of_a_simulator_job_imports_no_pydantic(ftctl, ftctl_home):
    from kit import create_job

    job_id = create_job(ftctl, "--n-evals", "30", "--early-stopping", "--sim-scenario", "plateau")
    code = ("import sys; from ftctl.__main__ import run\n"
            "try:\n    run(['metrics', %r])\nexcept SystemExit:\n    pass\n"
            "print('pydantic' in sys.modules, 'ftctl.models' in sys.modules, file=sys.stderr)" % job_id)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "FTCTL_HOME": str(ftctl_home), "FTCTL_SIM_SPEED": "inf"})
    assert "best" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "False False"
