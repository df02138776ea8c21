"""The eval_loss chart: a pure function from points and markers to lines of text.

Readable without colour: every mark is a glyph (colour only repeats it). The best evaluation is a
star, the halt a cross with a dotted column through it, warmup evaluations are hollow and the
non-improving streak that ended the run is drawn with ``×``; a band under the x axis sets the
warmup and the streak apart at any scale, and a legend in words sits under the chart.
Non-finite values leave a gap in the line and a mark on the top (NaN, +inf) or bottom (-inf) edge.
More evaluations than columns are drawn per column as a min-max span, so nothing is lost and the
best and halt markers are always drawn. Costs O(evaluations + width × height).

Off a terminal the size is fixed (``PLAIN_WIDTH`` columns, ``HEIGHT`` rows of plot) so the output
is stable; on a terminal it follows the terminal's width.
"""

from __future__ import annotations

import bisect
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

from ftctl.output.numbers import fmt_loss

if TYPE_CHECKING:
    from rich.text import Text

    from ftctl.analysis import Analysis

HEIGHT = 15  # rows of plot area
MIN_WIDTH = 30


@dataclass(frozen=True)
class Glyphs:
    point: str
    warmup: str
    streak: str
    best: str
    halt: str
    halt_column: str
    link: str
    span: str
    train: str
    gap: str
    warmup_band: str
    streak_band: str
    h: str
    v: str
    tick_y: str
    tick_x: str
    corner: str
    sep: str  # between the legend's facts
    not_run: str


UNICODE = Glyphs("●", "○", "×", "★", "✖", "┊", "·", "│", "-", "⊘", "░", "▒", "─", "│", "┤", "┬", "└", " · ", "╌")
ASCII = Glyphs("o", "w", "x", "*", "X", ":", ".", "|", "-", "!", "w", "x", "-", "|", "+", "+", "+", " | ", "-")

STYLES = {"point": "cyan", "warmup": "dim cyan", "streak": "yellow", "best": "bold green",
          "halt": "bold red", "halt_column": "red", "link": "cyan", "span": "cyan", "train": "dim",
          "gap": "bold magenta", "warmup_band": "dim", "streak_band": "yellow", "axis": "dim", "not_run": "red"}


@dataclass
class Chart:
    """Rows of (character, style) cells; ``lines()`` for plain text, ``text()`` for Rich."""

    cells: list[list[tuple[str, str | None]]] = field(default_factory=list)

    def add(self, text: str, style: str | None = None) -> None:
        self.cells.append([(c, style) for c in text])

    def lines(self) -> list[str]:
        return ["".join(c for c, _ in row).rstrip() for row in self.cells]

    def text(self) -> Text:
        from rich.text import Text

        out = Text()
        for n, row in enumerate(self.cells):
            if n:
                out.append("\n")
            run, style = "", None
            for char, cell_style in row:
                if cell_style != style and run:
                    out.append(run, style)
                    run = ""
                run += char
                style = cell_style
            out.append(run.rstrip() if not style else run, style)
        return out


def can_draw_unicode(encoding: str | None) -> bool:
    try:
        "".join(UNICODE.__dict__.values()).encode(encoding or "ascii")
        return True
    except (LookupError, UnicodeEncodeError):
        return False


class YScale:
    """Any finite floats (1e-320 to ±1.8e308) onto rows, without overflow or a division by zero.

    Values are divided by their largest magnitude first, so differences stay within ±2 however large
    the values are, and a range that rounds to nothing (subnormals, one value) is padded to 5 % of it.
    Labels are fixed-point for everyday losses and in %g form when that would be too wide or too coarse.
    """

    def __init__(self, low: float, high: float, scale: float, height: int, fixed: int | None) -> None:
        self.low, self.high, self.scale, self.height, self.fixed = low, high, scale, height, fixed
        self.per_row = (height - 1) / (high - low)  # rows per unit

    @classmethod
    def of(cls, finite: Sequence[float], height: int) -> YScale:
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        scale = max(abs(lo), abs(hi))
        if not 0 < scale < math.inf:
            scale = 1.0
        low, high = lo / scale, hi / scale
        if high - low < 1e-12:  # flat: centre it; everyday values keep the old absolute padding
            pad = max(abs(high) * 0.05, 0.05 / scale) if scale >= 1e-3 else 0.05
            low, high = low - pad, high + pad
            if not math.isfinite(high * scale) or not math.isfinite(low * scale):  # ±1.8e308: pad inwards
                shift = high - hi / scale if high > 0 else low - lo / scale
                low, high = low - shift, high - shift
        span = (high - low) * scale
        fixed = None
        if 1e-3 <= scale < 1e6 and span >= 1e-4:
            fixed = min(6, max(0, 2 - math.floor(math.log10(span))))
        return cls(low, high, scale, height, fixed)

    def unit(self, value: float) -> float:
        return value / self.scale

    def unit_row(self, unit: float) -> int:
        r = (self.high - unit) * self.per_row + 0.5
        return int(min(self.height - 1, max(0.0, r))) if r == r else 0

    def row(self, value: float) -> int:
        return self.unit_row(value / self.scale)

    def label(self, r: int) -> str:
        unit = self.high - r / self.per_row
        value = unit * self.scale
        if not math.isfinite(value):  # a padded edge beyond the largest float
            value = math.copysign(sys.float_info.max, unit)
        if self.fixed is not None:
            return f"{value:.{self.fixed}f}"
        digits = min(17, max(3, 2 - math.floor(math.log10(self.high - self.low))))
        return f"{value:.{digits}g}"


def _y_axis(chart: Chart, grid: list[list[tuple[str, str | None]]], y: YScale, label_rows: set[int],
            label_w: int, g: Glyphs) -> None:
    """The plotted rows, each behind the y axis: a value label on ``label_rows``, a bar elsewhere."""
    axis = STYLES["axis"]
    for r, cells in enumerate(grid):
        if r in label_rows:
            prefix = [(ch, axis) for ch in y.label(r).rjust(label_w)] + [(" ", None), (g.tick_y, axis)]
        else:
            prefix = [(" ", None)] * (label_w + 1) + [(g.v, axis)]
        chart.cells.append(prefix + cells)


def nice_ticks(low: float, high: float, count: int) -> list[float]:
    """Round numbers (1, 2 or 5 × 10^k apart) covering [low, high], about ``count`` of them."""
    if high <= low or count < 2:
        return [low]
    raw = (high - low) / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks, k = [], 0
    while first + k * step <= high + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def render(steps: Sequence[int], values: Sequence[float], *, best_step: int | None = None,
           best_value: float | None = None, halt_step: int | None = None,
           warmup_steps: Iterable[int] = (), streak_steps: Iterable[int] = (),
           train: Sequence[tuple[int, float]] = (), x_max: int | None = None, width: int = 100,
           height: int = HEIGHT, unicode: bool = True, legend: Sequence[str] = ()) -> Chart:
    """Draw eval_loss (and optionally train loss) against step. ``steps`` must be ascending."""
    g = UNICODE if unicode else ASCII
    chart = Chart()
    if not steps:
        chart.add("(no evaluations yet)")
        return chart
    height = max(3, height)
    all_finite = math.isfinite(sum(values))  # one C-level pass (an overflow only takes the long way)
    finite = [min(values), max(values)] if all_finite else [v for v in values if math.isfinite(v)]
    finite += [v for _, v in train if math.isfinite(v)]
    y = YScale.of(finite, height)  # reads only the lowest and the highest
    # Y axis labels at the top, bottom and a few rows between.
    label_rows = {0, height - 1} | {round(k * (height - 1) / 4) for k in range(1, 4)} if height >= 9 else {0, height - 1}
    label_w = max(len(y.label(r)) for r in label_rows)
    plot_w = max(MIN_WIDTH, width) - label_w - 2
    x0, x1 = 0, max(x_max or 0, steps[-1])
    if x1 <= x0:
        x1 = x0 + 1
    x_scale = (plot_w - 1) / (x1 - x0)

    def col(step: float) -> int:
        return min(plot_w - 1, max(0, int((step - x0) * x_scale + 0.5)))

    row = y.row

    grid: list[list[tuple[str, str | None]]] = [[(" ", None)] * plot_w for _ in range(height)]

    def put(r: int, c: int, glyph: str, style: str, *, over: bool = True) -> None:
        if over or grid[r][c][0] == " ":
            grid[r][c] = (glyph, STYLES[style])

    # Train loss: the mean per column, under everything else.
    if train:
        sums: dict[int, list[float]] = {}
        for step, value in train:
            if math.isfinite(value):
                acc = sums.setdefault(col(step), [0.0, 0])
                acc[0] += y.unit(value)
                acc[1] += 1
        for c, (total, n) in sums.items():
            put(y.unit_row(total / n), c, g.train, "train")

    # Evaluations bucketed by column: (min, max, count, last index) of the finite ones. Steps
    # ascend, so each column holds a run of them, found by bisection: one pass per column, at C
    # speed, however many evaluations (100,000 onto ~90 columns).
    warmup, streak = set(warmup_steps), set(streak_steps)
    buckets: dict[int, list] = {}
    gaps: list[tuple[int, float]] = []
    isfinite, last_col = math.isfinite, plot_w - 1

    def column_of(step: float) -> int:  # col(), inlined for the bisections
        c = int((step - x0) * x_scale + 0.5)
        return 0 if c < 0 else last_col if c > last_col else c

    count, j = len(steps), 0
    while j < count:
        c = column_of(steps[j])
        k = bisect.bisect_right(steps, c, lo=j, key=column_of)
        run = values[j:k]
        if all_finite or isfinite(sum(run)):
            buckets[c] = [min(run), max(run), k - j, k - 1]
        else:
            kept = [i for i in range(j, k) if isfinite(values[i])]
            gaps += [(c, values[i]) for i in range(j, k) if not isfinite(values[i])]
            if kept:
                finite_run = [values[i] for i in kept]
                buckets[c] = [min(finite_run), max(finite_run), len(kept), kept[-1]]
        j = k
    columns = sorted(buckets)
    # Links between neighbouring columns, interpolated; never across a non-finite value.
    gap_cols = {c for c, _ in gaps}
    for a, b in zip(columns, columns[1:]):
        if b - a < 2 or any(a < c < b for c in gap_cols):
            continue
        va, vb = y.unit(values[buckets[a][3]]), y.unit(values[buckets[b][3]])  # unit: no overflow
        for c in range(a, b + 1):  # each column covers the line from c - 0.5 to c + 0.5
            ends = [va + (vb - va) * (min(b, max(a, x)) - a) / (b - a) for x in (c - 0.5, c + 0.5)]
            for r in range(y.unit_row(max(ends)), y.unit_row(min(ends)) + 1):
                put(r, c, g.link, "link")
    for c in columns:
        lo, hi, n, last = buckets[c]
        if n > 1:
            for r in range(row(hi), row(lo) + 1):
                put(r, c, g.span, "span")
        else:
            step = steps[last]
            kind = "streak" if step in streak else "warmup" if step in warmup else "point"
            put(row(lo), c, getattr(g, kind), kind)
    for c, value in gaps:
        put(height - 1 if value < 0 else 0, c, g.gap, "gap")
    if halt_step is not None:
        hc = col(halt_step)
        for r in range(height):
            put(r, hc, g.halt_column, "halt_column", over=False)
        k = bisect.bisect_left(steps, halt_step)
        halt_value = values[k] if k < len(steps) and steps[k] == halt_step else None
        if halt_value is not None and math.isfinite(halt_value):
            put(row(halt_value), hc, g.halt, "halt")
        else:
            put(height - 1 if halt_value is not None and halt_value < 0 else 0, hc, g.halt, "halt")
    if best_step is not None and best_value is not None and math.isfinite(best_value):
        r, c = row(best_value), col(best_step)
        if grid[r][c][0] == g.halt:  # both in one cell: keep the halt and put the best beside it
            c = c - 1 if c > 0 else c + 1
        put(r, c, g.best, "best")

    axis = STYLES["axis"]
    _y_axis(chart, grid, y, label_rows, label_w, g)
    # X axis with ticks at round step numbers.
    ticks = [t for t in nice_ticks(x0, x1, max(2, plot_w // 12)) if t == int(t)]
    tick_cols = {col(t): int(t) for t in ticks}
    base = [(" ", None)] * (label_w + 1)
    chart.cells.append(base + [(g.corner, axis)] + [(g.tick_x if c in tick_cols else g.h, axis)
                                                      for c in range(plot_w)])
    # The band that sets warmup and the final streak apart, each evaluation owning the columns
    # nearest to it; after an early halt, the steps that were not run.
    not_run = halt_step is not None and x_max is not None and x_max > halt_step and col(halt_step) < plot_w - 1
    if warmup or streak or not_run:
        band: list[tuple[str, str | None]] = [(" ", None)] * plot_w
        if not_run:
            start = col(halt_step) + 1
            label = f" not run: {x_max - halt_step} steps refunded "
            fill = [g.not_run] * (plot_w - start)
            if len(label) + 2 <= len(fill):
                at = (len(fill) - len(label)) // 2
                fill[at:at + len(label)] = list(label)
            for c, ch in enumerate(fill, start):
                band[c] = (ch, STYLES["not_run"])
        first, last_c = column_of(steps[0]), column_of(steps[-1])
        for c in range(plot_w):  # the evaluation nearest each column, by bisection of the steps' columns
            k = bisect.bisect_left(steps, c, key=column_of)
            if k == count or (k > 0 and c - column_of(steps[k - 1]) <= column_of(steps[k]) - c):
                k -= 1
            spacing = max(1, (last_c - first) // max(1, len(steps) - 1))
            if c < first - spacing // 2 or c > last_c:
                continue
            s = steps[k]
            if band[c][0] != " ":
                continue
            if s in streak:
                band[c] = (g.streak_band, STYLES["streak_band"])
            elif s in warmup:
                band[c] = (g.warmup_band, STYLES["warmup_band"])
        chart.cells.append(base + [(" ", None)] + band)
    labels = [" "] * plot_w
    for c, t in sorted(tick_cols.items()):
        text = str(t)
        at = min(max(0, c - len(text) // 2), plot_w - len(text))  # never past the axis' end
        if all(ch == " " for ch in labels[max(0, at - 1):at + len(text) + 1]):
            labels[at:at + len(text)] = list(text)
    chart.cells.append(base + [(" ", None)] + [(ch, axis) for ch in "".join(labels).rstrip()])
    for line in legend:
        chart.add(" " * (label_w + 2) + line)
    return chart


def from_analysis(analysis: Analysis, *, train: Sequence[tuple[int, float]] = (), width: int = 100,
                  height: int = HEIGHT, unicode: bool = True) -> Chart:
    """The chart of a job's evaluations with its best and halt markers and a legend in words."""
    g = UNICODE if unicode else ASCII
    evaluations = analysis.evaluations  # its columns: no Evaluation is made for a chart
    steps, values = evaluations.steps, evaluations.values
    best_value = analysis.best_eval_loss
    best_step = analysis.best_step if best_value is not None else None
    halt = analysis.halt_step
    warmup = steps[:min(evaluations.warmup, evaluations.read)]
    streak = analysis.marked_streak
    return render(steps, values, best_step=best_step, best_value=best_value, halt_step=halt,
                  warmup_steps=warmup, streak_steps=streak, train=train, x_max=analysis.total_steps,
                  width=width, height=height, unicode=unicode,
                  legend=legend(analysis, g, train=bool(train), warmup=bool(warmup), streak=bool(streak)))


def legend(analysis: Analysis, g: Glyphs = UNICODE, *, train: bool = False, warmup: bool = False,
           streak: bool = False) -> list[str]:
    """Two lines: the outcome in words, then what each glyph means."""
    s = analysis.settings
    facts = []
    if analysis.best_eval_loss is not None:
        facts.append(f"{g.best} best {fmt_loss(analysis.best_eval_loss, 'short')} @ step {analysis.best_step}")
    elif analysis.fired:
        facts.append("no finite best")
    if analysis.fired:
        facts.append(f"{g.halt} halted @ step {analysis.halt_step}")
    elif analysis.default_rule is not None:
        would = analysis.default_rule
        facts.append("early stopping off" + (f" (the default rule would have halted @ step {would.halt_step})"
                                              if would.fired else ""))
    elif analysis.ended:
        facts.append("not stopped early")
    else:
        facts.append("running")
    facts.append(f"patience {s.patience}")
    if s.min_delta:
        facts.append(f"min_delta {s.min_delta}")
    if s.warmup_evals != 1:
        facts.append(f"warmup {s.warmup_evals}")
    key = [f"{g.point} eval_loss"]
    if warmup:
        key.append(f"{g.warmup}{g.warmup_band} warmup")
    if streak:
        key.append(f"{g.streak}{g.streak_band} non-improving streak")
    if analysis.evaluations.non_finite:
        key.append(f"{g.gap} non-finite")
    if train:
        key.append(f"{g.train} train loss")
    return [g.sep.join(facts), "  ".join(key)]


# --- several runs on one chart (``ftctl compare``) ---------------------------------------------

SERIES_UNICODE = "●▲■◆▼◇△○"
SERIES_ASCII = "o^#@v%&="
SERIES_STYLES = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta")


@dataclass(frozen=True)
class Series:
    """One run on a comparison chart: its evaluations, its own best and halt, and its legend words."""

    label: str
    steps: Sequence[int]
    values: Sequence[float]
    best_step: int | None = None
    best_value: float | None = None
    halt_step: int | None = None
    total_steps: int | None = None
    facts: str = ""


def series_from(label: str, analysis: Analysis, *, unicode: bool = True) -> Series:
    g = UNICODE if unicode else ASCII
    words = legend(analysis, g)[0]
    best_value = analysis.best_eval_loss
    return Series(label, analysis.evaluations.steps, analysis.evaluations.values,
                  analysis.best_step if best_value is not None else None, best_value, analysis.halt_step,
                  analysis.total_steps, words)


def render_many(series: Sequence[Series], *, width: int = 100, height: int = HEIGHT, unicode: bool = True) -> Chart:
    """eval_loss of several runs against step on shared axes: each run its own glyph (and colour),
    its best as a star and its halt as a cross on its own line; under the x axis one row per run
    shows its span, best (star) and halt (cross), then the steps it did not run; a legend names
    each run with its glyph and its outcome in words. Costs O(evaluations + runs × width × height)."""
    g = UNICODE if unicode else ASCII
    marks = SERIES_UNICODE if unicode else SERIES_ASCII
    chart = Chart()
    drawn = [s for s in series if s.steps]
    if not drawn:
        chart.add("(no evaluations yet)")
        return chart
    height = max(3, height)
    finite = [v for s in drawn for v in s.values if math.isfinite(v)]
    y = YScale.of(finite, height)  # the single-run chart's scale: any float places and labels
    label_rows = {0, height - 1} | {round(k * (height - 1) / 4) for k in range(1, 4)} if height >= 9 else {0, height - 1}
    label_w = max(len(y.label(r)) for r in label_rows)
    plot_w = max(MIN_WIDTH, width) - label_w - 2
    x1 = max(max(s.steps[-1] for s in drawn), max((s.total_steps or 0) for s in drawn), 1)
    x_scale = (plot_w - 1) / x1

    def col(step: float) -> int:
        return min(plot_w - 1, max(0, int(step * x_scale + 0.5)))

    row = y.row

    grid: list[list[tuple[str, str | None]]] = [[(" ", None)] * plot_w for _ in range(height)]

    def put(r: int, c: int, glyph: str, style: str | None, *, over: bool = True) -> None:
        if over or grid[r][c][0] == " ":
            grid[r][c] = (glyph, style)

    per_series = []
    for n, s in enumerate(drawn):
        style = SERIES_STYLES[n % len(SERIES_STYLES)]
        per_series.append((s, marks[n % len(marks)], style, _buckets(s.steps, s.values, col)))
    for s, _, style, buckets in per_series:  # links first: every run's points go over every link
        columns = sorted(buckets)
        for a, b in zip(columns, columns[1:]):
            if b - a < 2:
                continue
            va, vb = s.values[buckets[a][2]], s.values[buckets[b][2]]
            for c in range(a + 1, b):
                put(row(va + (vb - va) * (c - a) / (b - a)), c, g.link, style, over=False)
    for s, mark, style, buckets in per_series:
        for c, (lo, hi, _) in buckets.items():
            for r in {row(lo), row(hi)}:
                put(r, c, mark, style)
        if not math.isfinite(sum(s.values)):  # a gap mark for each NaN/±inf (an overflow finds none)
            for step, value in zip(s.steps, s.values):
                if not math.isfinite(value):
                    put(height - 1 if value < 0 else 0, col(step), g.gap, "bold magenta")
    for s, _, style, _ in per_series:
        if s.halt_step is not None:
            k = bisect.bisect_left(s.steps, s.halt_step)
            value = s.values[k] if k < len(s.steps) and s.steps[k] == s.halt_step else math.nan
            put(row(value) if math.isfinite(value) else 0, col(s.halt_step), g.halt, "bold " + style)
        if s.best_step is not None and s.best_value is not None and math.isfinite(s.best_value):
            put(row(s.best_value), col(s.best_step), g.best, "bold " + style)

    axis = STYLES["axis"]
    _y_axis(chart, grid, y, label_rows, label_w, g)
    ticks = [t for t in nice_ticks(0, x1, max(2, plot_w // 12)) if t == int(t)]
    tick_cols = {col(t): int(t) for t in ticks}
    base = [(" ", None)] * (label_w + 1)
    chart.cells.append(base + [(g.corner, axis)] + [(g.tick_x if c in tick_cols else g.h, axis)
                                                      for c in range(plot_w)])
    # One row per run: its glyph, then its span, best and halt, and what it did not run.
    for s, mark, style, _ in per_series:
        band: list[tuple[str, str | None]] = [(" ", None)] * plot_w
        end = col(s.halt_step if s.halt_step is not None else s.steps[-1])
        for c in range(col(s.steps[0]), end + 1):
            band[c] = (g.h, style)
        if s.halt_step is not None and s.total_steps and s.total_steps > s.halt_step:
            for c in range(end + 1, col(s.total_steps) + 1):
                band[c] = (g.not_run, "dim")
        if s.best_step is not None:
            band[col(s.best_step)] = (g.best, "bold " + style)
        if s.halt_step is not None:
            band[end] = (g.halt, "bold " + style)
        chart.cells.append(base[:-1] + [(mark, style), (" ", None)] + band)
    labels = [" "] * plot_w
    for c, t in sorted(tick_cols.items()):
        text = str(t)
        at = min(max(0, c - len(text) // 2), plot_w - len(text))
        if all(ch == " " for ch in labels[max(0, at - 1):at + len(text) + 1]):
            labels[at:at + len(text)] = list(text)
    chart.cells.append(base + [(" ", None)] + [(ch, axis) for ch in "".join(labels).rstrip()])
    for s, mark, style, _ in per_series:
        chart.cells.append([(" ", None)] * (label_w + 2) + [(mark, style)] +
                           [(ch, None) for ch in f" {s.label}: {s.facts}"])
    key = f"{g.best} best  {g.halt} halt  {g.not_run} steps not run (refunded)"
    chart.add(" " * (label_w + 2) + key)
    return chart


def _buckets(steps: Sequence[int], values: Sequence[float], col: Callable[[float], int]) -> dict[int, list]:
    """Each column's [lowest, highest, index of the last] finite value of one run. Steps ascend, so
    a column holds a run of them, found by bisection: a pass per column, not a call per value."""
    buckets: dict[int, list] = {}
    isfinite = math.isfinite
    n, j = len(steps), 0
    while j < n:
        c = col(steps[j])
        k = bisect.bisect_right(steps, c, lo=j, key=col)
        run, last = values[j:k], k - 1
        if not isfinite(sum(run)):
            kept = [i for i in range(j, k) if isfinite(values[i])]
            run, last = [values[i] for i in kept], (kept[-1] if kept else -1)
        if run:
            buckets[c] = [min(run), max(run), last]
        j = k
    return buckets
