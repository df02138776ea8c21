"""``ftctl report --format markdown`` (and the GitHub step summary a wait writes): per job a heading
with its id, status and outcome, a table of the facts, the eval_loss history as a Mermaid
``xychart-beta`` chart with the best and halt steps marked, the explanation, and the events in a
collapsible block; for several jobs, a comparison table at the end. Rendering only.

``xychart-beta``, not ``xychart``: GitHub's bundled Mermaid knows only the beta name. The chart
has no legend there, so the title names the best and the halt, two bar series (coloured by an init
directive: green best, red halt) stand at their steps, and a caption under it says so in words.

A step summary is limited to 1 MiB: the history is downsampled to at most ``MAX_POINTS`` points
(keeping each stretch's lowest and highest, the best and the halt), long explanations and event
logs are cut, and ``report`` shrinks the event blocks until the whole fits in ``LIMIT`` bytes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ftctl.output import outcome
from ftctl.output.numbers import fmt_loss

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
    from ftctl.comparison import Compared

LIMIT = 1_000_000  # bytes: under GitHub's 1 MiB per step summary, with room for what else a step appends
MAX_POINTS = 100
EVENTS_SHOWN = 100  # the first and last halves of a longer event log
EXPLANATION_LINES = 30
MESSAGE_CHARS = 300
PALETTE = "#2ca02c, #d62728, #1f77b4"  # the best bar, the halt bar, the eval_loss line
ICONS = {"completed": "✅", "error": "❌", "user_error": "❌", "cancelled": "🚫"}


def report(items: list[Compared], *, limit: int = LIMIT) -> str:
    """The whole document, at most ``limit`` bytes of UTF-8."""
    events = EVENTS_SHOWN
    while True:
        text = _document(items, events)
        if len(text.encode()) <= limit or events == 0:
            break
        events //= 2
    if len(text.encode()) > limit:  # only with very many jobs: cut at a line, and say so
        note = "\n\n_(report cut to fit GitHub's 1 MiB step summary; `ftctl report` without it has the rest)_\n"
        cut = text.encode()[:limit - len(note.encode())].decode(errors="ignore")
        text = cut[:cut.rfind("\n")] + note
    return text


def _document(items: list[Compared], events: int) -> str:
    parts = [section(c, events=events) for c in items]
    if len(items) > 1:
        parts.append(comparison_table(items))
    return "\n".join(parts)


def heading(c: Compared) -> str:
    status = outcome.status(c)
    icon = ICONS.get(status, "⏳" if outcome.running(c) else "📈")
    return f"## {icon} {_inline(c.job_id or 'saved history')} · {_inline(status)} · {_inline(outcome.sentence(c))}"


def section(c: Compared, *, events: int = EVENTS_SHOWN) -> str:
    a = c.analysis
    out = [heading(c), "", facts_table(c), ""]
    if a.evaluations:
        out += [mermaid(a), "", caption(a), ""]
    else:
        out += ["_No evaluations recorded yet._", ""]
    out += [explanation_text(a), ""]
    out.append(events_block(c, events))
    return "\n".join(out) + "\n"


def facts_table(c: Compared) -> str:
    a, job = c.analysis, c.job
    s = a.settings
    rows = [("status", outcome.status(c)),
            ("steps run", outcome.steps_text(c)),
            ("best eval_loss", outcome.best_text(c)),
            ("halt step", str(a.halt_step) if a.halt_step is not None else "—"),
            ("early stopping", "off" if a.enabled is False else
             f"patience {s.patience} · min_delta {fmt_loss(s.min_delta)} · warmup {s.warmup_evals} "
             f"({a.settings_source.replace('_', ' ')})")]
    model = job.get("model_output_name") or job.get("model")
    if model:
        rows.append(("model", str(model) + (f" (from {job['model']})" if job.get("model_output_name")
                                            and job.get("model") else "")))
    url = job.get("wandb_url")
    out = ["| | |", "|---|---|"] + [f"| {name} | {_cell(value)} |" for name, value in rows]
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        out.append(f"| W&B | [{_cell(url)}]({url.replace(')', '%29').replace(' ', '%20')}) |")
    return "\n".join(out)


def points(a: Analysis, max_points: int = MAX_POINTS) -> list[int]:
    """Indices of the evaluations the chart shows: all of them up to ``max_points``; else the first,
    the last, the best, the halt, and each stretch's lowest and highest (spikes survive)."""
    n = len(a.evaluations)
    if n <= max_points:
        return list(range(n))
    keep = {0, n - 1}
    for step in (a.best_step, a.halt_step):
        at = a.eval_at(step)
        if at is not None:
            keep.add(at - 1)
    buckets = (max_points - len(keep)) // 2
    values = a.evaluations.values  # the column: no Evaluation made for the 100,000 not drawn
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        stretch = values[lo:hi]
        if math.isfinite(sum(stretch)):  # all finite: the first lowest and highest, at C speed
            keep.add(lo + stretch.index(min(stretch)))
            keep.add(lo + stretch.index(max(stretch)))
            continue
        finite = [i for i in range(lo, hi) if math.isfinite(values[i])]
        if not finite:
            keep.add(lo)
            continue
        keep.add(min(finite, key=values.__getitem__))
        keep.add(max(finite, key=values.__getitem__))
    return sorted(keep)[:max_points] if len(keep) > max_points else sorted(keep)


def _num(value: float) -> str:
    return fmt_loss(value, "exact")


def mermaid(a: Analysis, max_points: int = MAX_POINTS) -> str:
    """A ```mermaid xychart-beta block: the line is eval_loss; a bar stands at the best, one at the halt."""
    shown = [a.evaluations[i] for i in points(a, max_points)]
    finite = [e.eval_loss for e in shown if math.isfinite(e.eval_loss)] or [0.0, 1.0]
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.05 or max(abs(high) * 0.05, 0.05)
    y_min, y_max = float(f"{low - pad:.4g}"), float(f"{high + pad:.4g}")
    if y_min >= low:
        y_min = low - pad
    if y_max <= high:
        y_max = high + pad

    def drawn(v: float) -> float:  # xychart has no gaps: a non-finite value sits on an edge
        return v if math.isfinite(v) else (y_min if v < 0 else y_max)

    best_step = a.best_step if a.best_eval_loss is not None else None
    halt = a.halt_step
    best_bar = [drawn(e.eval_loss) if e.step == best_step else y_min for e in shown]
    halt_bar = [drawn(e.eval_loss) if e.step == halt else y_min for e in shown]
    lines = ["```mermaid",
             '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + PALETTE + '"}}}}%%',
             "xychart-beta",
             f'    title "{chart_title(a)}"',
             '    x-axis "step" [' + ", ".join(f'"{e.step}"' for e in shown) + "]",
             f'    y-axis "eval_loss" {_num(y_min)} --> {_num(y_max)}',
             "    bar [" + ", ".join(map(_num, best_bar)) + "]",
             "    bar [" + ", ".join(map(_num, halt_bar)) + "]",
             "    line [" + ", ".join(_num(drawn(e.eval_loss)) for e in shown) + "]",
             "```"]
    return "\n".join(lines)


def chart_title(a: Analysis) -> str:
    parts = ["eval_loss"]
    if a.best_eval_loss is not None:
        parts.append(f"best {fmt_loss(a.best_eval_loss, 'short')} at step {a.best_step}")
    if a.halt_step is not None:
        parts.append(f"halted at step {a.halt_step}")
    elif a.ended:
        parts.append("not stopped early")
    return " - ".join(parts).replace('"', "'")


def caption(a: Analysis) -> str:
    n, shown = len(a.evaluations), len(points(a))
    words = ["Blue line: eval_loss by step"]
    if a.best_eval_loss is not None:
        words.append(f"green bar: the best (step {a.best_step})")
    if a.halt_step is not None:
        words.append(f"red bar: the halt (step {a.halt_step})")
    text = "; ".join(words) + "."
    if shown < n:
        text += (f" {shown} of {n} evaluations drawn (each stretch's lowest and highest, the best and the halt); "
                 "`ftctl metrics ID --json` has them all.")
    if a.evaluations.non_finite:
        text += " Non-finite values are drawn on the chart's top (NaN, +inf) or bottom (-inf) edge."
    return f"<sub>{_inline(text)}</sub>"


def explanation_text(a: Analysis) -> str:
    from ftctl.output.explanation import explain

    lines = explain(a, unicode=True)
    if len(lines) > EXPLANATION_LINES:
        from ftctl.output.explanation import Line

        cut = len(lines) - EXPLANATION_LINES + 5
        lines = lines[:EXPLANATION_LINES - 5] + [Line(2, f"… {cut} more lines (`ftctl explain ID` has them all)")] \
            + lines[-5:]
    out: list[str] = []
    for n, line in enumerate(lines):
        text = _inline(line.text)
        if line.kind == "warning":
            text = f"> [!WARNING]\n> {text}"
        if n and (not line.indent or not lines[n - 1].indent):
            out.append("")  # a paragraph, or the start or end of a list of details
        out.append(f"- {text}" if line.indent else text)
    return "\n".join(out)


def events_block(c: Compared, limit: int = EVENTS_SHOWN) -> str:
    events = c.events if c.events is not None else c.job.get("events")
    if not events:
        return "<details><summary>Events</summary>\n\nNo event log (a saved history, or not fetched).\n\n</details>\n"
    rows = [e for e in events if isinstance(e, dict)]
    if len(rows) > limit:
        half = limit // 2
        hidden = len(rows) - 2 * half
        body = [_event_line(e) for e in rows[:half]] + [f"… {hidden} events not shown (`ftctl events ID` has them all)"] \
            + [_event_line(e) for e in rows[len(rows) - half:]] if half else [f"{len(rows)} events (`ftctl events ID`)"]
    else:
        body = [_event_line(e) for e in rows]
    return (f"<details><summary>Events ({len(rows)})</summary>\n\n```text\n" + "\n".join(body)
            + "\n```\n\n</details>\n")


def _event_line(e: dict[str, Any]) -> str:
    parts = [str(e.get("created_at") or ""), str(e.get("type") or ""), str(e.get("level") or ""),
             str(e.get("message") or "")]
    text = "  ".join(p for p in parts if p).replace("\n", " ").replace("\r", " ").replace("```", "'''")
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


def comparison_table(items: list[Compared]) -> str:
    rows = ["## Comparison", "",
            "| job | status | patience | min_delta | warmup | halt step | best step | best eval_loss | steps run |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in items:
        a, s = c.analysis, c.analysis.settings
        off = a.enabled is False
        cells = [c.job_id or "saved history", outcome.status(c), "off" if off else s.patience,
                 "" if off else fmt_loss(s.min_delta), "" if off else s.warmup_evals,
                 a.halt_step if a.halt_step is not None else "—", a.best_step if a.best_step is not None else "—",
                 fmt_loss(a.best_eval_loss, "table") if a.best_eval_loss is not None else "—",
                 outcome.steps_text(c)]
        rows.append("| " + " | ".join(_cell(str(x)) for x in cells) + " |")
    return "\n".join(rows) + "\n"


def _inline(text: str) -> str:
    """API text in Markdown: no HTML, no table breaks, one line."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ")
            .replace("\n", " "))


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|")
