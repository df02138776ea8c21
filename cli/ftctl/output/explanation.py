"""Why early stopping fired, or did not: the narrative of ``docs/early-stopping.md`` §5, rendered from
an ``Analysis`` (the same facts as its JSON object), plus what-if answers and the cross-check line.

Pure text: ``explain()`` and ``what_if()`` return ``Line``s (a paragraph each, with an indent);
``write()`` wraps them to the terminal's width. Values are shown as reported (``repr``), evaluation
numbers are 1-based, and the outcome never depends on verbosity.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ftctl import early_stopping as es
from ftctl.output.numbers import exact_text, fmt_loss
from ftctl.wire import FAILED_STATUSES, failure_reason

if TYPE_CHECKING:
    from ftctl.analysis import Analysis, Verdict, WhatIf
    from ftctl.output.terminal import Terminal

# A long streak shows its first and last evaluations: the ones the shortened evaluation table keeps
# too (``report._table_subset``: those just after the best and up to the halt), so both agree.
TRAIL_HEAD, TRAIL_TAIL = 2, 4
MAX_BOUNDARY_LINES = 3  # "lower but not by more than min_delta" lines before summarising the rest
SETTINGS_SOURCE = {
    "recorded": "as sent at create, recorded by ftctl",
    "assumed_defaults": "the server's defaults, assumed: the API does not return a job's settings and ftctl "
                        "has no record of them; `ftctl explain` with --patience/--min-delta/--warmup-evals "
                        "replays with others",
    "given": "as given on the command line",
}


@dataclass(frozen=True)
class Line:
    indent: int
    text: str
    kind: str = "text"  # text | ok | warning


def settings_text(s: es.Settings) -> str:
    return f"patience {s.patience}, min_delta {fmt_loss(s.min_delta)}, warmup {s.warmup_evals}"


def _threshold(best: float, min_delta: float) -> str:
    """What an evaluation had to be below to count: the rule's own exact arithmetic."""
    return exact_text(es.exact_difference(best, min_delta))


def _of(a: Analysis) -> str:
    n = a.job.get("n_evals")
    return f" of {n}" if isinstance(n, int) and n else ""


def _refund(a: Analysis, halt: int | None) -> str | None:
    total = a.total_steps
    if halt is None or total is None:
        return None
    if total > halt:
        return f"Steps {halt + 1}-{total} ({total - halt} of {total}) were not run and are refunded."
    return "Patience ran out at the last evaluation, so no steps were left to refund."


def _last_step(a: Analysis) -> int | None:
    if a.total_steps is not None:
        return a.total_steps
    return a.evaluations[-1].step if a.evaluations else None


def explain(a: Analysis, *, unicode: bool = True, failure: bool = True) -> list[Line]:
    """The whole explanation: why the job failed (unless ``failure`` is off: the job view above
    says it), the outcome, the settings it was read with, and the cross-check."""
    if a.enabled is False:
        lines = _not_enabled(a)
    else:
        check = a.cross_check
        if "fired" in check.differences:
            lines = _server_only(a)
        elif a.fired and a.final.reason == es.NON_FINITE_EVAL_LOSS:
            lines = _non_finite(a)
        elif a.fired:
            lines = _patience(a)
        else:
            lines = _not_fired(a)
        lines.append(Line(0, f"Settings: {settings_text(a.settings)} ({SETTINGS_SOURCE[a.settings_source]})."))
        if check.applicable:
            if check.agrees:
                lines.append(Line(0, ("✓ " if unicode else "OK: ") + "the replay of the history agrees with the "
                                     "server's early_stopped, best step and best eval_loss.", "ok"))
            else:
                lines.append(Line(0, disagreement(a), "warning"))
    failed = _failed(a) if failure else None
    if failed:
        lines.insert(0, failed)
    missing = a.evaluations.missing_steps
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        lines.append(Line(0, f"The metrics history has no usable eval_loss at step {shown}; ftctl reads a missing "
                             "value as not finite (the vendor does not say)."))
    return lines


def _failed(a: Analysis) -> Line | None:
    """A job that ended unsuccessfully says so first, and why (its error event's message)."""
    status = a.job.get("status")
    if status not in FAILED_STATUSES:
        return None
    reason = failure_reason(a.job)
    if reason:
        return Line(0, f"The job ended {status}: {reason}")
    return Line(0, f"The job ended {status}" + ("." if status == "cancelled" else
                                               " (its event log does not say why: ftctl events ID)."))


def disagreement(a: Analysis) -> str:
    """One line naming both answers; the server's is the one shown as the truth."""
    check = a.cross_check
    assert check.server is not None
    if a.settings_source == "assumed_defaults":  # ftctl lost (or never had) the settings: the likely cause
        return (f"the server's verdict ({_verdict(check.server)}) is not what the server's default settings "
                f"({settings_text(a.settings)}, assumed: ftctl has no record of this job's) give "
                f"({_verdict(check.replay)}), so the job most likely ran with other settings. Showing the "
                "server's answer; give the job's settings to explain --patience/--min-delta/--warmup-evals "
                "to replay with them.")
    return (f"the server and the replay disagree ({', '.join(check.differences)}): the server says "
            f"{_verdict(check.server)}; replaying the history with {settings_text(a.settings)} gives "
            f"{_verdict(check.replay)}. Showing the server's answer.")


def _verdict(v: Verdict) -> str:
    best = (f"best step {v.best_step} (eval_loss {fmt_loss(v.best_eval_loss)})" if v.best_eval_loss is not None
            else "no finite best")
    return (f"early stopping fired at step {v.halt_step}, {best}" if v.fired
            else f"early stopping did not fire, {best}")


def _patience(a: Analysis) -> list[Line]:
    s, halt = a.settings, a.halt_step
    best, best_step = a.best_eval_loss, a.best_step
    best_i = a.eval_at(best_step)
    lines = [Line(0, f"Early stopping fired at step {halt} (evaluation {a.eval_at(halt)}{_of(a)}): eval_loss did "
                     f"not improve for {s.patience} consecutive evaluations (patience {s.patience}).")]
    threshold = _threshold(a.final.best_value, s.min_delta) if a.final.best_value is not None else "?"
    lines.append(Line(2, f"Best: eval_loss {fmt_loss(best)} at step {best_step} (evaluation {best_i}). An evaluation "
                         f"counts as an improvement only if it is more than min_delta ({fmt_loss(s.min_delta)}) below "
                         f"the best, i.e. below {threshold}."))
    lines += _trail(a, threshold)
    if a.final.best_i is not None and a.final.best_i <= s.warmup_evals:
        lines.append(Line(2, f"Evaluation {a.final.best_i} is a warmup evaluation: it set the best value but did "
                             "not count toward patience."))
    lines += _boundaries(a)
    refund = _refund(a, halt)
    lines.append(Line(2, f"The checkpoint from step {best_step} was promoted as the final model."
                         + (f" {refund}" if refund else "")))
    return lines


def _trail(a: Analysis, threshold: str) -> list[Line]:
    """The streak that ended the run, one evaluation per line (a long one: its head and tail)."""
    p = a.settings.patience
    first, end = a.final.evals - a.final.streak, a.final.evals
    steps, values = a.evaluations.steps[first:end], a.evaluations.values[first:end]
    n = len(steps)
    step_w = max(len(str(steps[0])), len(str(steps[-1]))) if steps else 0  # ascending: the widest is an end
    value_w = max(map(len, map(fmt_loss, values)), default=0)
    out = []
    for k in range(1, n + 1):
        if n > TRAIL_HEAD + TRAIL_TAIL + 1 and TRAIL_HEAD < k <= n - TRAIL_TAIL:
            if k == TRAIL_HEAD + 1:
                out.append(Line(4, f"... {n - TRAIL_HEAD - TRAIL_TAIL} more evaluations, none below "
                                   f"{threshold} ..."))
            continue
        e = a.evaluations[first + k - 1]
        end = " -> halt" if a.final.stopped and e.eval == a.final.halt_i else ""
        out.append(Line(4, f"step {str(e.step).ljust(step_w)}  eval_loss {fmt_loss(e.eval_loss).ljust(value_w)}  "
                           f"not below {threshold}   ({k} of {p}){end}"))
    return out


def _boundaries(a: Analysis) -> list[Line]:
    """Evaluations that were lower than the best, or level with it, yet did not count."""
    d = a.settings.min_delta
    delta = es.exact(d)
    found = []
    for e in a.evaluations.near_best():  # a float pre-filter: the decision below is in exact decimals
        gap = es.exact_difference(e.best_before, e.eval_loss)
        if gap == delta:
            if d == 0:
                found.append(f"Evaluation {e.eval} ({fmt_loss(e.eval_loss)}) equals the best; a tie does not count "
                             "as an improvement.")
            else:
                found.append(f"Evaluation {e.eval} is exactly min_delta ({fmt_loss(d)}) below the best "
                             f"({fmt_loss(e.best_before)}); a decrease equal to min_delta does not count.")
        elif gap > 0:
            found.append(f"Evaluation {e.eval} ({fmt_loss(e.eval_loss)}) was lower than the best but not by more "
                         f"than min_delta ({fmt_loss(d)}), so it did not count and was not promoted.")
    lines = [Line(2, text) for text in found[:MAX_BOUNDARY_LINES]]
    if len(found) > MAX_BOUNDARY_LINES:
        lines.append(Line(2, f"({len(found) - MAX_BOUNDARY_LINES} more evaluations like these.)"))
    return lines


def _non_finite(a: Analysis) -> list[Line]:
    halt = a.halt_step
    bad = a.evaluations[a.final.halt_i - 1]
    what = ("missing (no usable eval_loss in the history)" if bad.missing else fmt_loss(bad.eval_loss))
    head = f"Early stopping fired at step {halt} (evaluation {a.eval_at(halt)}{_of(a)}): eval_loss was {what}, " \
           "which is not a finite number"
    refund = _refund(a, halt)
    if a.best_eval_loss is None:
        lines = [Line(0, f"{head}. No finite eval_loss was recorded before it, so there is no best checkpoint: "
                         f"early_stopping_best_metric is null and early_stopping_best_step is the halt step "
                         f"({halt}).")]
        if refund:
            lines.append(Line(2, refund))
        return lines
    lines = [Line(0, f"{head}; a non-finite eval_loss halts the run immediately, regardless of patience and "
                     "warmup."),
             Line(2, f"Best finite eval_loss before it: {fmt_loss(a.best_eval_loss)} at step {a.best_step} "
                     f"(evaluation {a.eval_at(a.best_step)}); that checkpoint was promoted.")]
    if refund:
        lines.append(Line(2, refund))
    return lines


def _not_fired(a: Analysis) -> list[Line]:
    s = a.settings
    n = len(a.evaluations)
    best = (f"eval_loss {fmt_loss(a.best_eval_loss)} at step {a.best_step} (evaluation {a.eval_at(a.best_step)})"
            if a.best_eval_loss is not None else None)
    status = a.job.get("status")
    if not a.ended:
        threshold = _threshold(a.final.best_value, s.min_delta) if a.final.best_value is not None else None
        lines = [Line(0, f"Early stopping ({settings_text(s)}) has not fired so far: {n}{_of(a)} evaluations have "
                         f"run, and the current run of non-improving evaluations after warmup is "
                         f"{a.final.streak} of {s.patience}.")]
        if best:
            lines.append(Line(2, f"Best so far: {best}; the next evaluation must be below {threshold} to count as "
                                 "an improvement."))
        return lines
    if status not in (None, "completed"):
        lines = [Line(0, f"Early stopping ({settings_text(s)}) did not fire before the job ended ({status}) after "
                         f"{n}{_of(a)} evaluations. The longest run of non-improving evaluations after warmup was "
                         f"{a.longest_streak} of {s.patience}.")]
        if best:
            lines.append(Line(2, f"Best {best}."))
        return lines
    lines = [Line(0, f"Early stopping was enabled ({settings_text(s)}) but did not fire: all {n} evaluations ran. "
                     f"The longest run of non-improving evaluations after warmup was {a.longest_streak} of "
                     f"{s.patience}.")]
    last = _last_step(a)
    if best:
        tail = "which is also the best one" if a.best_step == last else "not the best one"
        lines.append(Line(2, f"Best {best}. The job was not early-stopped, so its final model is the checkpoint "
                             f"from the last step ({last}), {tail}."))
    return lines


def _server_only(a: Analysis) -> list[Line]:
    """The server's verdict when the replay cannot reproduce whether it fired."""
    best = (f"eval_loss {fmt_loss(a.best_eval_loss)} at step {a.best_step}" if a.best_eval_loss is not None
            else "no finite eval_loss")
    replay = "a replay with the assumed default settings" if a.settings_source == "assumed_defaults" \
        else "the replay of the history"
    if a.fired:
        refund = _refund(a, a.halt_step)
        return [Line(0, f"Early stopping fired at step {a.halt_step} (the server's answer; {replay} "
                        "does not reproduce it)."),
                Line(2, f"Best: {best}; that checkpoint was promoted." + (f" {refund}" if refund else ""))]
    return [Line(0, f"Early stopping did not fire (the server's answer; {replay} says it "
                    f"would have): the final model is the checkpoint from the last step ({_last_step(a)})."),
            Line(2, f"Best: {best}.")]


def _not_enabled(a: Analysis) -> list[Line]:
    n = len(a.evaluations)
    if a.job.get("status") in (None, "completed"):
        head = (f"Early stopping was not enabled for this job: all {n} evaluations ran and the final model is the "
                f"checkpoint from the last step ({_last_step(a)}).")
    elif a.ended:
        head = f"Early stopping was not enabled for this job; {n}{_of(a)} evaluations ran before it ended."
    else:
        head = f"Early stopping was not enabled for this job ({n}{_of(a)} evaluations so far)."
    return [Line(0, head), Line(2, what_if_sentence(a.default_rule, default=True))]


def what_if_sentence(w: WhatIf, *, default: bool = False) -> str:
    """One sentence: where the run would have halted under ``w.settings``, against what happened."""
    who = (f"With the default rule ({settings_text(w.settings)}) this run" if default
           else f"With {settings_text(w.settings)} this run")
    if w.fired:
        if w.best_eval_loss is None:
            promoted = f"with no finite best (eval_loss at evaluation {w.halt_eval} is not finite)"
        else:
            promoted = f"promoting step {w.best_step} (eval_loss {fmt_loss(w.best_eval_loss)})"
        why = " because eval_loss was not finite" if w.reason == es.NON_FINITE_EVAL_LOSS else ""
        return f"{who} would have stopped at step {w.halt_step} (evaluation {w.halt_eval}){why}, {promoted}" \
               f"{_against(w)}."
    if not w.conclusive and w.history_end_step is None:
        return f"{who} cannot be replayed: there is no eval_loss history yet."
    if not w.conclusive:
        return (f"{who} would not have stopped by step {w.history_end_step}, where the recorded history ends; it "
                "would have run longer than the actual run, by how much the history cannot tell.")
    best = f"; best eval_loss {fmt_loss(w.best_eval_loss)} at step {w.best_step}" if w.best_eval_loss is not None else ""
    return f"{who} would not have stopped: it would have run to the last step ({w.steps_run}){best}{_against(w)}."


def _against(w: WhatIf) -> str:
    if w.steps_saved is None or w.actual_steps is None:
        return ""
    total = f" of {w.total_steps}" if w.total_steps is not None else ""
    if w.steps_saved > 0 and w.actual_steps == w.total_steps:
        return f", saving {w.steps_saved}{total} steps"
    if w.steps_saved > 0:
        return f", {w.steps_saved} steps fewer than the actual run ({w.actual_steps}{total})"
    if w.steps_saved < 0:
        return f", {-w.steps_saved} steps more than the actual run ({w.actual_steps}{total})"
    return f", the same {w.actual_steps} steps as the actual run"


def sweep_rows(rows: list[WhatIf]) -> list[list[str]]:
    """The sweep as a table: settings, then where each would have halted and what it saves."""
    out = []
    for w in rows:
        s = w.settings
        if w.steps_saved is None:
            against = "?" if not w.conclusive else ""
        else:
            against = f"saves {w.steps_saved}" if w.steps_saved > 0 else (
                f"costs {-w.steps_saved}" if w.steps_saved < 0 else "same")
        halt = str(w.halt_step) if w.fired else ("no halt" if w.conclusive else f"> {w.history_end_step}")
        out.append([str(s.patience), fmt_loss(s.min_delta), str(s.warmup_evals), halt,
                    "" if w.best_step is None or not w.conclusive else str(w.best_step),
                    fmt_loss(w.best_eval_loss) if w.conclusive else "",
                    "" if w.steps_run is None else str(w.steps_run), against])
    return out


SWEEP_HEADER = ["PATIENCE", "MIN_DELTA", "WARMUP", "HALT STEP", "BEST STEP", "BEST EVAL_LOSS", "STEPS RUN",
                "VS ACTUAL"]


def paragraphs(lines: list[Line], width: int) -> list[str]:
    """Lines wrapped to ``width``, continuation lines at the paragraph's indent."""
    out = []
    for line in lines:
        pad = " " * line.indent
        out += textwrap.wrap(line.text, width=max(40, width), initial_indent=pad, subsequent_indent=pad,
                             break_on_hyphens=False) or [""]
    return out


def write(term: Terminal, lines: list[Line]) -> None:
    """Text to stdout; a disagreement with the server is a warning on stderr too, in one line."""
    body = [line for line in lines if line.kind != "warning"]
    for line in lines:
        if line.kind == "warning":
            term.warn(line.text)
    if not term.is_tty or not term.color:
        term.write("\n".join(paragraphs(body, term.width)))
        return
    from rich.text import Text

    for line in body:
        for text in paragraphs([line], term.width):
            term.show(Text(text, "green" if line.kind == "ok" else ""))


def show(term: Terminal, analysis: Analysis, what_ifs: list[WhatIf]) -> None:
    """``explain``: the explanation, then one what-if sentence or a sweep table."""
    from ftctl.output.report import unicode_ok

    write(term, explain(analysis, unicode=unicode_ok(term)))
    if not what_ifs:
        return
    term.write("")
    if len(what_ifs) == 1:
        write(term, [Line(0, what_if_sentence(what_ifs[0]))])
        return
    rows = sweep_rows(what_ifs)
    if not term.is_tty:
        term.rows(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, title="What if", title_justify="left")
    for name in SWEEP_HEADER:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    term.show(table)
