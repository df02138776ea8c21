"""Human and plain views of jobs, events, checkpoints and evaluations.

On a terminal: Rich layouts sized to it. Off one: plain lines, tab-separated, no header, full ids,
ISO-8601 UTC times, nothing cut, no colour, so that ``cut``/``awk``/``grep`` work on them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftctl.output.numbers import fmt_loss
from ftctl.wire import FAILED_STATUSES, TERMINAL_STATUSES
from ftctl.output.terminal import Terminal

if TYPE_CHECKING:
    from ftctl.analysis import Analysis

STATUS_STYLE = {"completed": "green", "error": "red", "user_error": "red", "cancelled": "red",
                "cancel_requested": "yellow"}


def _status_style(status: str) -> str:
    return STATUS_STYLE.get(status, "yellow" if status not in TERMINAL_STATUSES else "")


def early_stopping_line(job: dict[str, Any]) -> str | None:
    """One glance: best step and metric, halt step, refund (or the tracked best while running)."""
    stopped = job.get("early_stopped")
    best_step, best = job.get("early_stopping_best_step"), job.get("early_stopping_best_metric")
    total, done = job.get("total_steps"), job.get("steps_completed")
    if stopped is True:
        if best is None:
            head = f"halted at step {done}: no finite eval_loss was recorded, so no best checkpoint"
        else:
            head = f"halted at step {done} · best eval_loss {fmt_loss(best, 'table')} at step {best_step} (promoted)"
        if isinstance(total, int) and isinstance(done, int):
            head += f" · {total - done} of {total} steps refunded"
        return head
    if best_step is not None:
        ended = job.get("status") == "completed"
        suffix = f" · not stopped early: the final model is step {total}, not the best" if ended else ""
        return f"best eval_loss so far {fmt_loss(best, 'table')} at step {best_step}{suffix}"
    return None


def job(term: Terminal, data: dict[str, Any]) -> None:
    if not term.is_tty:
        keys = ("id", "status", "model", "model_output_name", "created_at", "updated_at", "total_steps",
                "steps_completed", "evals_completed", "epochs_completed", "n_epochs", "n_evals",
                "early_stopped", "early_stopping_best_step", "early_stopping_best_metric")
        rows = [[k, fmt_loss(data[k], 'table') if k == "early_stopping_best_metric" else data[k]]
                for k in keys if k in data]
        if data.get("early_stopped") is True and isinstance(data.get("total_steps"), int) \
                and isinstance(data.get("steps_completed"), int):
            rows.append(["steps_refunded", data["total_steps"] - data["steps_completed"]])
        term.rows(rows)
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
    line = early_stopping_line(data)
    if line:
        grid.add_row("early stop", line)
    if data.get("created_at"):
        grid.add_row("created", str(data["created_at"]))
    if status in FAILED_STATUSES:
        grid.add_row("ended", Text(status, "red"))
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
    if isinstance(seconds, (int, float)) and data.get("status") not in TERMINAL_STATUSES:
        text += f" · about {int(seconds)} s left"
    return text


def _ids_fit(term: Terminal, ids: list[str]) -> bool:
    """Keep ids on one line (the other columns fold first) when the terminal leaves the others
    some room; on a very narrow one, ids fold too rather than being cut."""
    return max(map(len, ids), default=0) + 40 <= term.width


def job_list(term: Terminal, jobs: list[dict[str, Any]]) -> None:
    if not term.is_tty:
        term.rows([[j.get("id"), j.get("status"), j.get("model"), j.get("steps_completed"),
                    j.get("total_steps"), j.get("early_stopped"), j.get("created_at")] for j in jobs])
        return
    if not jobs:
        term.note("No fine-tuning jobs yet. Start one with: ftctl create --help")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    whole = _ids_fit(term, [str(j.get("id")) for j in jobs])
    for name in ("ID", "STATUS", "MODEL", "STEPS", "EARLY STOP", "CREATED"):
        table.add_column(name, overflow="fold", no_wrap=name == "ID" and whole)
    for j in jobs:
        status = str(j.get("status", ""))
        steps = f"{j.get('steps_completed', '?')}/{j.get('total_steps', '?')}" if "total_steps" in j else ""
        if j.get("early_stopped") is True:
            es = f"halted · best @ {j.get('early_stopping_best_step')}"
        else:
            es = ""
        table.add_row(str(j.get("id")), Text(status, _status_style(status)),
                      str(j.get("model") or ""), steps, es, str(j.get("created_at") or ""))
    term.show(table)


def events(term: Terminal, rows: list[dict[str, Any]]) -> None:
    if not term.is_tty:
        term.rows([[e.get("created_at"), e.get("type"), e.get("level"), e.get("step"), e.get("message")]
                   for e in rows])
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("TIME", "TYPE", "STEP", "MESSAGE"):
        table.add_column(name, overflow="fold")
    for e in rows:
        kind = str(e.get("type") or "")
        style = "bold cyan" if kind.lower() in ("early_stopped", "refund") else (
            "red" if str(e.get("level") or "").lower() == "error" else "")
        table.add_row(str(e.get("created_at") or ""), Text(kind, style),
                      "" if e.get("step") is None else str(e["step"]), str(e.get("message") or ""))
    term.show(table)


def checkpoints(term: Terminal, rows: list[dict[str, Any]], job_id: str) -> None:
    if not term.is_tty:
        term.rows([[c.get("step"), c.get("checkpoint_type"), c.get("path"), c.get("created_at")] for c in rows])
        return
    if not rows:
        term.note(f"No checkpoints saved yet for {job_id}.")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    whole = _ids_fit(term, [f"{job_id}:{c.get('step')}" for c in rows])
    for name in ("DOWNLOAD ID", "STEP", "TYPE", "CREATED"):
        table.add_column(name, overflow="fold", no_wrap=name == "DOWNLOAD ID" and whole)
    for c in rows:
        final = "intermediate" not in str(c.get("checkpoint_type") or "").lower()
        table.add_row(job_id if final else f"{job_id}:{c.get('step')}", str(c.get("step")),
                      str(c.get("checkpoint_type") or ""), str(c.get("created_at") or ""))
    term.show(table)


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
