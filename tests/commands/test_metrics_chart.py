"""The eval_loss chart: markers where the rule puts them, glyphs that read without colour, a fixed
size off a terminal, and every size of history (1 to 100,000 evaluations, NaN/Inf) drawn."""

from __future__ import annotations

import math
import re

import pytest

from ftctl.analysis import analyse
from ftctl.output import chart
from kit import BASE, WORKED

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def rows(values, every=12):
    return [{"train/global_step": every * (i + 1), "eval/loss": v} for i, v in enumerate(values)]


def worked_job(**extra):
    job = {"status": "completed", "total_steps": 120, "n_evals": 10, "early_stopped": True, "steps_completed": 72,
           "early_stopping_best_step": 48, "early_stopping_best_metric": 0.4213}
    return {**job, **extra}


class Geometry:
    """Reads a drawn chart back: where the plot starts, its width, and which step a column is."""

    def __init__(self, lines: list[str], x_max: int) -> None:
        self.lines = lines
        self.axis = next(i for i, line in enumerate(lines) if line.lstrip().startswith(("└", "+-", "++")))
        axis = lines[self.axis]
        self.left = len(axis) - len(axis.lstrip()) + 1
        self.width = len(axis) - self.left
        self.x_max = x_max

    def plot(self) -> list[str]:
        return [line[self.left:] for line in self.lines[:self.axis]]

    def find(self, glyph: str) -> list[tuple[int, int]]:
        return [(r, c) for r, line in enumerate(self.plot()) for c, ch in enumerate(line) if ch == glyph]

    def step_of(self, column: int) -> float:
        return column * self.x_max / (self.width - 1)

    def tolerance(self) -> float:
        return self.x_max / (self.width - 1)


def test_worked_example_has_best_and_halt_markers_at_their_steps_and_a_legend_in_words():
    a = analyse(worked_job(), rows(WORKED[:6]))
    lines = chart.from_analysis(a, width=100).lines()
    g = Geometry(lines, 120)
    (best,), (halt,) = g.find("★"), g.find("✖")
    assert abs(g.step_of(best[1]) - 48) <= g.tolerance() / 2
    assert abs(g.step_of(halt[1]) - 72) <= g.tolerance() / 2
    # best is the lowest point: the bottom row of the plot
    assert best[0] == len(g.plot()) - 1
    # the dotted halt column runs the full height of the plot
    assert all(line[halt[1]] in "┊✖" for line in g.plot())
    # warmup evaluation hollow, the two non-improving evaluations crossed (the halt itself is ✖)
    assert len(g.find("○")) == 1 and len(g.find("×")) == 1
    assert "★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2" in [line.strip() for line in lines]
    assert any("○░ warmup" in line and "×▒ non-improving streak" in line for line in lines)
    # the band under the axis sets the warmup and the streak apart
    band = lines[g.axis + 1]
    assert "░" in band and "▒" in band and band.index("░") < band.index("▒")
    assert all(len(line) <= 100 for line in lines)


def test_ascii_fallback_has_the_same_marks_in_ascii():
    a = analyse(worked_job(), rows(WORKED[:6]))
    lines = chart.from_analysis(a, width=80, unicode=False).lines()
    text = "\n".join(lines)
    assert text.isascii()
    g = Geometry(lines, 120)
    assert len(g.find("*")) == 1 and len(g.find("X")) == 1
    assert "* best 0.4213 @ step 48 | X halted @ step 72 | patience 2" in text


@pytest.mark.parametrize("width", [40, 80, 160])
def test_chart_fits_the_width_it_is_given(width):
    a = analyse(worked_job(), rows(WORKED[:6]))
    lines = chart.from_analysis(a, width=width).lines()
    plot_and_axis = lines[:-2]  # the legend is words and may run on
    assert max(len(line) for line in plot_and_axis) <= width
    assert len([line for line in lines if "┤" in line or "│" in line]) == chart.HEIGHT


def test_one_evaluation():
    a = analyse({"status": "running", "total_steps": 120}, rows([1.234]))
    lines = chart.from_analysis(a, width=60).lines()
    g = Geometry(lines, 120)
    assert len(g.find("★")) == 1  # the only evaluation is the best so far
    assert "★ best 1.234 @ step 12 · running · patience 2" in [line.strip() for line in lines]


def test_nan_in_the_middle_is_a_marked_gap_not_a_line():
    # Early stopping off: the job ran past the NaN, so the history goes on after it.
    values = [1.0, 0.8, math.nan, 0.5, 0.4]
    a = analyse({"status": "completed", "total_steps": 60}, rows(values), sent={"early_stopping_enabled": False})
    lines = chart.from_analysis(a, width=70).lines()
    g = Geometry(lines, 60)
    (gap,) = g.find("⊘")
    assert gap[0] == 0  # NaN is marked on the top edge
    assert abs(g.step_of(gap[1]) - 36) <= g.tolerance()
    # no line is drawn through the gap: the columns between eval 2 and eval 4 carry no link
    points = sorted(c for glyph in "●○★×" for _, c in g.find(glyph))
    left, right = [c for c in points if c < gap[1]][-1], [c for c in points if c > gap[1]][0]
    between = [line[c] for line in g.plot() for c in range(left + 1, right) if c < len(line)]
    assert "·" not in between
    assert any("⊘ non-finite" in line for line in lines)


def test_minus_infinity_is_marked_on_the_bottom_edge_and_a_nan_halt_is_the_halt_marker():
    a = analyse({"status": "completed", "total_steps": 48}, rows([1.0, -math.inf, 0.5, 0.4]),
                sent={"early_stopping_enabled": False})
    g = Geometry(chart.from_analysis(a, width=60).lines(), 48)
    (gap,) = g.find("⊘")
    assert gap[0] == len(g.plot()) - 1
    halted = analyse(worked_job(early_stopped=True, steps_completed=12, early_stopping_best_step=12,
                                early_stopping_best_metric=None, total_steps=48), rows([math.nan]))
    lines = chart.from_analysis(halted, width=60).lines()
    g = Geometry(lines, 48)
    assert len(g.find("✖")) == 1 and not g.find("★")
    assert lines[-2].strip().startswith("no finite best · ✖ halted @ step 12")


def test_all_values_non_finite_and_no_values_at_all():
    a = analyse({"status": "completed"}, rows([math.nan, math.inf]), sent={"early_stopping_enabled": False})
    assert chart.from_analysis(a, width=60).lines()
    assert chart.render([], []).lines() == ["(no evaluations yet)"]


@pytest.mark.parametrize("n", [10, 1_000, 100_000])
def test_large_histories_are_downsampled_with_best_and_halt_kept(n):
    # A falling curve with its minimum three evaluations before the end of the run.
    best_i = n - 3
    values = [2.0 - i / n if i < best_i else 1.0 + (i - best_i) * 0.1 for i in range(1, n + 1)]
    values[best_i - 1] = 0.5
    job = {"status": "completed", "total_steps": n, "n_evals": n, "early_stopped": True, "steps_completed": n - 1,
           "early_stopping_best_step": best_i, "early_stopping_best_metric": 0.5}
    a = analyse(job, rows(values[:n - 1], every=1))
    assert a.cross_check.agrees
    lines = chart.from_analysis(a, width=100).lines()
    g = Geometry(lines, n)
    assert len(g.find("★")) == 1 and len(g.find("✖")) == 1
    assert all(len(line) <= 100 for line in lines[:-2])
    assert len(lines) == chart.HEIGHT + 3 + 2  # plot, axis, band, ticks, legend
    assert f"best 0.5 @ step {best_i}" in lines[-2] and f"halted @ step {n - 1}" in lines[-2]


def test_train_loss_is_drawn_under_eval_loss_with_its_own_glyph():
    a = analyse(worked_job(), rows(WORKED[:6]))
    train = [(s, 2.3 - s / 40) for s in range(1, 73)]
    lines = chart.from_analysis(a, width=100, train=train).lines()
    assert any("-" in line for line in Geometry(lines, 120).plot())
    assert "- train loss" in lines[-1]


def test_y_labels_span_the_values_and_x_ticks_are_round_numbers():
    a = analyse(worked_job(), rows(WORKED[:6]))
    lines = chart.from_analysis(a, width=100).lines()
    assert lines[0].startswith("2.00 ┤")
    assert lines[chart.HEIGHT - 1].startswith("0.42 ┤")
    ticks = lines[chart.HEIGHT + 2].split()
    assert ticks == ["0", "20", "40", "60", "80", "100", "120"]


# --- through the CLI: terminal and not, with and without colour ------------------------------------



def worked_job_id(ftctl, scenario_file) -> str:
    result = ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--sim-scenario",
                   scenario_file(WORKED, steps_per_epoch=24), "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def test_off_a_terminal_the_chart_is_the_fixed_plain_width(ftctl, scenario_file):
    job_id = worked_job_id(ftctl, scenario_file)
    out = ftctl("metrics", job_id, env={"COLUMNS": "60"}).stdout
    assert "\x1b[" not in out
    lines = out.splitlines()
    axis = next(line for line in lines if line.lstrip().startswith("└"))
    assert len(axis) == 100  # ftctl.output.terminal.PLAIN_WIDTH, whatever the environment says
    assert "★ best 0.4213 @ step 48 · ✖ halted @ step 72 · patience 2" in out


@pytest.mark.parametrize("color", ["always", "never"])
def test_on_a_terminal_the_chart_follows_its_width_with_or_without_colour(ftctl, scenario_file, color):
    job_id = worked_job_id(ftctl, scenario_file)
    out = ftctl("metrics", job_id, "--color", color, tty=72).stdout
    coloured = "\x1b[32m" in out or "\x1b[1;32m" in out
    assert coloured is (color == "always")
    plain = ANSI.sub("", out)
    axis = next(line for line in plain.splitlines() if line.lstrip().startswith("└"))
    assert len(axis.rstrip()) <= 72
    # the glyphs carry the meaning, colour only repeats it
    assert "★" in plain and "✖" in plain and "best 0.4213 @ step 48 · ✖ halted @ step 72" in plain


def test_a_long_history_keeps_the_rows_that_matter(ftctl, scenario_file):
    losses = [2.0 - i / 100 for i in range(60)] + [1.5] * 2  # best at eval 60, then two worse ones
    job_id = ftctl(*BASE, "--n-evals", str(len(losses)), "--early-stopping", "--sim-scenario",
                   scenario_file(losses, steps_per_epoch=len(losses)), "-q").stdout.strip()
    tty = ftctl("metrics", job_id, "--color", "never", tty=100)
    assert "The table shows 11 of 62 evaluations" in tty.stderr
    lines = tty.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["EVAL", "STEP"]) + 1
    table = [line.split() for line in lines[start:lines.index("", start)]]
    # the first five, the last five, and those around the best (60) and the halt (62)
    assert [int(row[0]) for row in table] == [1, 2, 3, 4, 5, 57, 58, 59, 60, 61, 62]
    piped = ftctl("metrics", job_id)  # a CI log gets the same rows, as plain tab-separated lines
    assert [int(line.split("\t")[0]) for line in piped.stdout.splitlines() if line.count("\t") == 5] == [
        1, 2, 3, 4, 5, 57, 58, 59, 60, 61, 62]
    assert "The table shows 11 of 62 evaluations" in piped.stderr
    every = ftctl("metrics", job_id, "--all-evaluations")
    assert len([line for line in every.stdout.splitlines() if line.count("\t") == 5]) == 62
