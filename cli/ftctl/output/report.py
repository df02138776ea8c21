"""A run, shown whole: the job at a glance, the eval_loss chart, the evaluation table and the
explanation, in that order (``metrics``, and ``wait`` when the job ends). Rendering only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ftctl.output import chart as charts
from ftctl.output import explanation
from ftctl.output.terminal import Terminal

if TYPE_CHECKING:
    from ftctl.analysis import Analysis

# More evaluations than this: the table keeps the ones that matter, on a terminal and in a log alike
# (a CI log of 100,000 rows helps nobody); --all-evaluations and --json have every one.
TABLE_ROWS = 40


def unicode_ok(term: Terminal) -> bool:
    return charts.can_draw_unicode(getattr(term.out, "encoding", None))


def train_points(rows: Sequence[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, train/loss) of the training rows, for ``--train``."""
    out = []
    for row in rows:
        step, loss = row.get("train/global_step"), row.get("train/loss")
        if isinstance(step, (int, float)) and isinstance(loss, (int, float)) and not isinstance(loss, bool):
            out.append((int(step), float(loss)))
    return out


def chart_height(term: Terminal) -> int:
    if not term.is_tty:
        return charts.HEIGHT
    import shutil

    return max(6, min(charts.HEIGHT, shutil.get_terminal_size((100, 40)).lines - 12))


def show_chart(term: Terminal, analysis: Analysis, *, train: Sequence[tuple[int, float]] = ()) -> None:
    drawn = charts.from_analysis(analysis, train=train, width=term.width, height=chart_height(term),
                                 unicode=unicode_ok(term))
    if term.is_tty and term.color:
        term.show(drawn.text())
    else:
        term.write("\n".join(drawn.lines()))


def show(term: Terminal, analysis: Analysis, *, job: dict[str, Any] | None = None,
         train: Sequence[tuple[int, float]] = (), chart: bool = True, table: bool = True,
         explain: bool = True, all_evaluations: bool = False) -> None:
    from ftctl.output import views

    sections = []
    if job is not None:
        sections.append(lambda: views.job(term, job))
    if chart:
        sections.append(lambda: show_chart(term, analysis, train=train))
    if table and analysis.evaluations:
        sections.append(lambda: views.evaluations(term, analysis if all_evaluations else _table_subset(term, analysis)))
    if explain:
        sections.append(lambda: explanation.write(term, explanation.explain(analysis, unicode=unicode_ok(term),
                                                                        failure=job is None)))
    for n, section in enumerate(sections):
        if n:
            term.write("")  # one blank line between sections
        section()


def _table_subset(term: Terminal, analysis: Analysis) -> Any:
    """A long history keeps its first and last rows and those around the best and the halt."""
    evaluations = analysis.evaluations
    if len(evaluations) <= TABLE_ROWS:
        return analysis
    from types import SimpleNamespace

    keep = set(range(5)) | set(range(len(evaluations) - 5, len(evaluations)))
    for step in (analysis.best_step, analysis.halt_step):
        at = analysis.eval_at(step)
        if at is not None:
            keep |= set(range(max(0, at - 4), min(len(evaluations), at + 3)))
    term.note(f"The table shows {len(keep)} of {len(evaluations)} evaluations (the first, the last, and those "
              "around the best and the halt); --all-evaluations or --json prints them all.")
    # The table reads only these four attributes.
    return SimpleNamespace(evaluations=[evaluations[i] for i in sorted(keep)], settings=analysis.settings,
                           best_step=analysis.best_step, halt_step=analysis.halt_step)
