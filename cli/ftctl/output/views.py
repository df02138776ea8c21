"""Human and plain views of jobs, events, checkpoints and evaluations.

On a terminal: Rich layouts sized to it. Off one: plain lines, tab-separated, no header, full ids,
ISO-8601 UTC times, nothing cut, no colour, so that ``cut``/``awk``/``grep`` work on them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ftctl.output.numbers import fmt_loss
from ftctl.wire import FAILED_STATUSES, TERMINAL_STATUSES, failure_reason
from ftctl.output.terminal import Terminal

if TYPE_CHECKING:
    from ftctl.analysis import Analysis

STATUS_STYLE = {"completed": "green", "error": "red", "user_error": "red", "cancelled": "red",
                "cancel_requested": "yellow"}


def _status_style(status: str) -> str:
    return STATUS_STYLE.get(status, "yellow" if status not in TERMINAL_STATUSES else "")


# The plain (piped) view of a job prints these API fields, in this order, and nothing else: every
# one can be asked for with --fields (tests/contract/test_first_hour.py keeps them in fields.KINDS["job"]).
PLAIN_JOB_KEYS = ("id", "status", "model", "model_output_name", "created_at", "updated_at", "total_steps",
                  "steps_completed", "evals_completed", "epochs_completed", "n_epochs", "n_evals",
                  "early_stopped", "early_stopping_best_step", "early_stopping_best_metric", "wandb_url")


def settings_text(sent: dict[str, Any]) -> str:
    """The early-stopping settings of a create body; the server's default for those not sent."""
    from ftctl.early_stopping import settings_from
    from ftctl.output.explanation import settings_text as text

    return text(settings_from(sent.get("early_stopping_patience"), sent.get("early_stopping_min_delta"),
                              sent.get("early_stopping_warmup_evals")))


def _typed(job: dict[str, Any]) -> dict[str, Any]:
    """``models.typed_job``, skipped (no pydantic) for a job already in that form (``ftctl.shapes``)."""
    from ftctl.shapes import already_typed, plainly_valid

    typed = already_typed("Job", job)
    events = job.get("events")
    if typed is None and events and type(events) is list and plainly_valid("Event", events):
        # a retrieved job's event log: the view reads only its levels and messages, which are
        # strings (or null) as they came, as typed_job would make them; the rest is typed alone
        if already_typed("Job", {k: v for k, v in job.items() if k != "events"}) is not None:
            typed = dict(job)
    if typed is None:
        from ftctl.models import typed_job

        typed = typed_job(job)
    return typed


def early_stopping_line(job: dict[str, Any], sent: dict[str, Any] | None = None) -> str | None:
    """One glance: on or off (when ftctl sent the settings), then what happened: best step and
    metric, halt step, refund; the tracked best while running ("so far" only then)."""
    job = _typed(job)  # a server's string numbers read as numbers, garbage as absent
    stopped = job.get("early_stopped")
    best_step, best = job.get("early_stopping_best_step"), job.get("early_stopping_best_metric")
    total, done = job.get("total_steps"), job.get("steps_completed")
    status = job.get("status")
    ended = status in TERMINAL_STATUSES
    if stopped is True:
        if best is None:
            head = f"halted at step {done}: no finite eval_loss was recorded, so no best checkpoint"
        else:
            head = f"halted at step {done} · best eval_loss {fmt_loss(best, 'table')} at step {best_step} (promoted)"
        if isinstance(total, int) and isinstance(done, int):
            head += f" · {total - done} of {total} steps refunded"
        return head
    from ftctl.analysis import early_stopping_on

    enabled = early_stopping_on(job, sent)
    if enabled is None:
        return None  # created elsewhere and nothing tracked yet: ftctl cannot tell on from off
    if enabled is False:
        return "off"
    parts = [f"on ({settings_text(sent)})" if sent and "early_stopping_enabled" in sent else "on"]
    if not ended:
        parts.append("not fired (yet)")
    elif status == "completed":
        parts.append(f"did not fire: the final model is step {total}" + (", not the best" if best_step is not None
                                                                          and best_step != total else ""))
    else:
        parts.append(f"did not fire before the job ended {status}")
    if best_step is not None:
        parts.append(f"best eval_loss{'' if ended else ' so far'} {fmt_loss(best, 'table')} at step {best_step}")
    return " · ".join(parts)


def job(term: Terminal, data: dict[str, Any], sent: dict[str, Any] | None = None) -> None:
    """A job at a glance; ``sent`` is the create body ftctl sent for it, when it created it."""
    data = _typed(data)
    if not term.is_tty:
        term.rows([[k, fmt_loss(data[k], 'table') if k == "early_stopping_best_metric" else data[k]]
                   for k in PLAIN_JOB_KEYS if k in data])
        reason = failure_reason(data)
        if reason:  # not a field of the job: said on stderr, where a log keeps it
            term.note(f"Job {data.get('id')} ended {data.get('status')}: {reason}")
        return
    from rich.table import Table
    from rich.text import Text

    status = str(data.get("status", "?"))
    title = Text.assemble((data.get("id", "?"), "bold"), "  ", (status, _status_style(status)))
    if data.get("early_stopped") is True:
        title.append("  early-stopped", "bold cyan")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    model = str(data.get("model") or data.get("from_checkpoint") or "?")
    if data.get("model_output_name"):
        model += f"  →  {data['model_output_name']}"
    grid.add_row("model", model)
    grid.add_row("progress", _progress(data))
    line = early_stopping_line(data, sent)
    if line:
        grid.add_row("early stop", line)
    if data.get("created_at"):
        grid.add_row("created", Text(fmt_time(data["created_at"]), no_wrap=True))
    if data.get("wandb_url"):
        grid.add_row("W&B", Text(str(data["wandb_url"]), no_wrap=True))
    if status in FAILED_STATUSES:
        reason = failure_reason(data)
        grid.add_row("ended", Text.assemble((status, "red"), f": {reason}" if reason else ""))
    term.show(title)
    term.show(grid)


def _progress(data: dict[str, Any]) -> str:
    parts = []
    for done, total, unit in (("steps_completed", "total_steps", "steps"), ("evals_completed", "n_evals", "evals"),
                              ("epochs_completed", "n_epochs", "epochs")):
        if isinstance(data.get(done), int) and isinstance(data.get(total), int) and data[total]:
            parts.append(f"{data[done]}/{data[total]} {unit}")
    text = " · ".join(parts) or "unknown"
    seconds = (data.get("progress") or {}).get("seconds_remaining") if isinstance(data.get("progress"), dict) else None
    if isinstance(seconds, (int, float)) and math.isfinite(seconds) and data.get("status") not in TERMINAL_STATUSES:
        text += f" · about {int(seconds)} s left"
    return text


def fmt_time(value: Any) -> str:
    """An API time for a person: ISO-8601 UTC to the second (``2026-12-01T22:35:46Z``, still valid
    for --logged-at-from); anything else as given. The plain and JSON outputs keep it exact."""
    import re

    text = str(value or "")
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|\+00:00)", text)
    return match.group(1) + "Z" if match else text


# -- tables that never break an id, a time or a type ----------------------------------------------
#
# A column is "whole" (ids, times, types, statuses: never folded, since a broken id cannot be
# copied) or "folding" (free text, folded no narrower than ``fold_at``). When the terminal is too
# narrow for every whole column and the folding ones at ``fold_at``, the least useful columns are dropped
# (``drop``: lowest first); when even that does not fit, each row becomes a block (the first
# column on its own line, the others as "label  value" lines), as gh does on a narrow terminal.

MIN_FOLD = 12
GAP = 2  # Rich's padding between columns (1 each side, no edge)


class Col:
    def __init__(self, name: str, *, whole: bool = False, drop: int | None = None, label: str | None = None,
                 fold_at: int = MIN_FOLD):
        self.name, self.whole, self.drop, self.fold_at = name, whole, drop, fold_at
        self.label = label or name.lower()


def _cell_len(cell: Any) -> int:
    return max((len(line) for line in str(cell).splitlines()), default=0)


def _need(col: Col, cells: list[Any]) -> int:
    longest = max([len(col.name)] + [_cell_len(c) for c in cells]) if cells else len(col.name)
    return longest if col.whole else min(col.fold_at, longest)


def table(term: Terminal, cols: list[Col], rows: list[list[Any]]) -> None:
    """Rows under ``cols`` as a table, fewer columns, or blocks: whichever keeps whole cells whole."""
    from rich.table import Table

    keep = list(range(len(cols)))
    needs = [_need(c, [r[i] for r in rows]) for i, c in enumerate(cols)]

    def width(idx: list[int]) -> int:
        return sum(needs[i] for i in idx) + GAP * (len(idx) - 1)

    for i in sorted((i for i, c in enumerate(cols) if c.drop is not None), key=lambda i: cols[i].drop):
        if width(keep) <= term.width:
            break
        keep.remove(i)
    if width(keep) > term.width:
        _blocks(term, cols, rows)
        return
    out = Table(box=None, header_style="bold", pad_edge=False)
    for i in keep:
        c = cols[i]
        out.add_column(c.name, no_wrap=c.whole, min_width=needs[i] if c.whole else None,
                       overflow="fold")  # never cut: a whole column that cannot fit would use blocks
    for row in rows:
        out.add_row(*[row[i] for i in keep])
    term.show(out)


def _blocks(term: Terminal, cols: list[Col], rows: list[list[Any]]) -> None:
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    label_width = max(len(c.label) for c in cols[1:])
    for n, row in enumerate(rows):
        if n:
            term.show(Text(""))
        head = row[0] if isinstance(row[0], Text) else Text(str(row[0]))
        head.stylize("bold")
        term.show(head)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True, min_width=label_width)
        grid.add_column(overflow="fold")
        for c, cell in zip(cols[1:], row[1:]):
            if str(cell) != "":
                grid.add_row(c.label, Text(cell, no_wrap=True) if c.whole and isinstance(cell, str) else cell)
        term.show(Padding(grid, (0, 0, 0, 2)))


def job_list(term: Terminal, jobs: list[dict[str, Any]]) -> None:
    if not term.is_tty:
        term.rows([[j.get("id"), j.get("status"), j.get("model"), j.get("steps_completed"),
                    j.get("total_steps"), j.get("early_stopped"), j.get("created_at")] for j in jobs])
        return
    if not jobs:
        term.note("No fine-tuning jobs yet. Start one with: ftctl create --help")
        return
    from rich.text import Text

    cols = [Col("ID", whole=True), Col("STATUS", whole=True), Col("STEPS", whole=True),
            Col("EARLY STOP", drop=2, label="early stop"), Col("MODEL", drop=1, fold_at=16), Col("CREATED", whole=True)]
    rows = []
    for j in jobs:
        status = str(j.get("status", ""))
        steps = f"{j.get('steps_completed', '?')}/{j.get('total_steps', '?')}" if "total_steps" in j else ""
        es = f"halted · best @ {j.get('early_stopping_best_step')}" if j.get("early_stopped") is True else ""
        rows.append([str(j.get("id")), Text(status, _status_style(status), no_wrap=True), steps, es,
                     str(j.get("model") or ""), fmt_time(j.get("created_at"))])
    table(term, cols, rows)


def events(term: Terminal, rows: list[dict[str, Any]]) -> None:
    if not term.is_tty:
        term.rows([[e.get("created_at"), e.get("type"), e.get("level"), e.get("step"), e.get("message")]
                   for e in rows])
        return
    from rich.text import Text

    cols = [Col("TIME", whole=True), Col("TYPE", whole=True), Col("STEP", whole=True, drop=1), Col("MESSAGE", fold_at=24)]
    out = []
    for e in rows:
        kind = str(e.get("type") or "")
        style = "bold cyan" if kind.lower() in ("early_stopped", "refund") else (
            "red" if str(e.get("level") or "").lower() == "error" else "")
        out.append([fmt_time(e.get("created_at")), Text(kind, style, no_wrap=True),
                    "" if e.get("step") is None else str(e["step"]), str(e.get("message") or "")])
    table(term, cols, out)


def checkpoints(term: Terminal, rows: list[dict[str, Any]], job_id: str) -> None:
    """Each checkpoint with its download id and why it exists; the promoted one marked ★ (piped:
    the word "promoted" in its own column)."""
    if not term.is_tty:
        term.rows([[c.get("download_id"), c.get("step"), c.get("checkpoint_type"),
                    "promoted" if c.get("promoted") else "", c.get("path"), c.get("created_at"), c.get("why")]
                   for c in rows])
        return
    if not rows:
        term.note(f"No checkpoints saved yet for {job_id}.")
        return
    from rich.text import Text

    cols = [Col("DOWNLOAD ID", whole=True, label="download id"), Col("STEP", whole=True, drop=2),
            Col("TYPE", whole=True), Col("CREATED", whole=True, drop=1), Col("WHY", fold_at=24)]
    out = []
    for c in rows:
        promoted = bool(c.get("promoted"))
        out.append([Text(str(c.get("download_id")), "bold green" if promoted else "", no_wrap=True),
                    str(c.get("step")), ("★ " if promoted else "") + str(c.get("checkpoint_type") or ""),
                    fmt_time(c.get("created_at")), str(c.get("why") or "")])
    table(term, cols, out)


def evaluations(term: Terminal, analysis: Analysis) -> None:
    """Each evaluation: step, eval_loss, change against the best so far, improvement, streak."""
    rows = []
    for e in analysis.evaluations:
        change = "" if e.best_before is None or e.eval_loss != e.eval_loss else f"{e.eval_loss - e.best_before:+.4g}"
        if e.improved is None:
            verdict = "after halt"
        elif e.eval_loss != e.eval_loss or e.eval_loss in (float("inf"), float("-inf")):
            verdict = "non-finite: halt"
        elif e.warmup:
            verdict = "warmup, best" if e.improved else "warmup"
        else:
            verdict = "improved" if e.improved else "no"
        streak = "" if e.streak is None or e.warmup else f"{e.streak}/{analysis.settings.patience}"
        rows.append([e.eval, e.step, fmt_loss(e.eval_loss, 'table') + (" (missing)" if e.missing else ""),
                     change, verdict, streak])
    if not term.is_tty:
        term.rows(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("EVAL", "STEP", "EVAL_LOSS", "Δ VS BEST", "IMPROVED", "STREAK"):
        table.add_column(name, justify="right" if name != "IMPROVED" else "left", overflow="fold")
    best_step = analysis.best_step
    for row, e in zip(rows, analysis.evaluations):
        style = "bold green" if e.step == best_step else ("bold red" if e.step == analysis.halt_step else "")
        table.add_row(*[str(c) for c in row], style=style)
    term.show(table)
