"""``ftctl compare``: the settings that differ, how each run ended, and one chart with every run's
eval_loss (its own glyph, best and halt). Rendering only; the data is ``ftctl.comparison``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftctl.output.numbers import fmt_loss
from ftctl.output.terminal import Terminal

if TYPE_CHECKING:
    from ftctl.comparison import Compared

OUTCOME_HEADER = ["JOB", "STATUS", "HALT STEP", "BEST STEP", "BEST EVAL_LOSS", "STEPS RUN", "REFUNDED", "COST"]


def label(c: Compared, n: int) -> str:
    return c.job_id or f"file {n + 1}"


def _show(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return fmt_loss(value)
    return str(value)


def settings_rows(items: list[Compared], names: list[str]) -> list[list[str]]:
    from ftctl.comparison import SETTINGS

    labels = dict(SETTINGS)
    settings = [c.settings() for c in items]
    return [[labels[name], *(_show(s[name]) for s in settings)] for name in names]


def outcome_rows(items: list[Compared]) -> list[list[str]]:
    rows = []
    for n, c in enumerate(items):
        o = c.outcome()
        steps = "" if o["steps_run"] is None else f"{o['steps_run']}" + (
            f"/{o['total_steps']}" if o["total_steps"] is not None else "")
        rows.append([label(c, n), o["status"] or "", _dash(o["halt_step"]), _dash(o["best_step"]),
                     fmt_loss(o["best_eval_loss"], "table") if o["best_eval_loss"] is not None else "—", steps,
                     str(o["steps_refunded"]), f"${o['cost_usd']:.2f}" if o["cost_usd"] is not None else "?"])
    return rows


def _dash(value: Any) -> str:
    return "—" if value is None else str(value)


def show(term: Terminal, items: list[Compared], differing: list[str]) -> None:
    from ftctl.output import chart as charts
    from ftctl.output.report import chart_height, unicode_ok

    labels = [label(c, n) for n, c in enumerate(items)]
    if differing:
        _table(term, ["SETTING", *labels], settings_rows(items, differing), "Settings that differ")
    else:
        term.note("The runs have the same settings (as far as the API and ftctl's records tell).")
    term.write("")
    _table(term, OUTCOME_HEADER, outcome_rows(items), "Outcome")
    term.write("")
    unicode = unicode_ok(term)
    series = [charts.series_from(lab, c.analysis, unicode=unicode) for lab, c in zip(labels, items)]
    drawn = charts.render_many(series, width=term.width, height=chart_height(term), unicode=unicode)
    if term.is_tty and term.color:
        term.show(drawn.text())
    else:
        term.write("\n".join(drawn.lines()))


def _table(term: Terminal, header: list[str], rows: list[list[str]], title: str) -> None:
    if not term.is_tty:
        term.rows([header, *rows])
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, title=title, title_justify="left")
    for n, name in enumerate(header):
        table.add_column(name, justify="left" if n == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    term.show(table)
