"""What ``wait`` shows while it waits. Rendering only: it receives ``ftctl.follow`` updates.

On a terminal: a live panel redrawn in place (status and steps, the latest eval_loss, the best so
far, "non-improving: 1 of 2 (patience)", what the next evaluation must beat, and the chart so far);
it disappears when the wait ends, and the caller prints the full report. Off a terminal: one plain
line on stderr per state change or new evaluation, no animation, so CI logs stay readable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftctl.output.numbers import exact_text, fmt_loss
from ftctl.output.terminal import Terminal

if TYPE_CHECKING:
    from ftctl.follow import Evaluation, Update, Watch


def progress(job: dict[str, Any]) -> str:
    done, total = job.get("steps_completed"), job.get("total_steps")
    if isinstance(done, int) and isinstance(total, int) and total:
        return f"step {done}/{total}"
    return ""


def rule_text(watch: Watch) -> list[str]:
    """The early-stopping state in words: best so far, the streak, what the next eval must beat."""
    if watch.enabled is False:
        return ["early stopping off"]
    state, s = watch.state, watch.settings
    if state.best_value is None:
        return [] if not state.stopped else ["no finite eval_loss yet"]
    parts = [f"best {fmt_loss(state.best_value)} @ step {watch.evaluations[state.best_i - 1].step}"]
    if state.stopped:
        return parts
    if state.evals > s.warmup_evals:
        parts.append(f"non-improving: {state.streak} of {s.patience} (patience)")
    else:
        parts.append(f"warmup {state.evals} of {s.warmup_evals}")
    parts.append(f"next eval must be below {exact_text(watch.threshold)}")
    return parts


def evaluation_line(watch: Watch, e: Evaluation) -> str:
    n_evals = watch.job.get("n_evals")
    of = f" of {n_evals}" if isinstance(n_evals, int) and n_evals else ""
    parts = [f"eval {e.eval}{of}", f"step {e.step}", f"eval_loss {fmt_loss(e.eval_loss)}"]
    state = e.state
    if watch.enabled is not False:
        if state.stopped and state.halt_i == e.eval:
            parts.append("early stopping halts here" + (" (not finite)" if state.reason == "non_finite_eval_loss"
                                                        else f" (patience {watch.settings.patience})"))
        elif state.improved:
            parts.append("improved")
    # The rule's state as it stood after this evaluation.
    parts += rule_text(_at(watch, e))
    return " · ".join(parts)


def _at(watch: Watch, e: Evaluation) -> Watch:
    from dataclasses import replace

    return replace(watch, evaluations=watch.evaluations[:e.eval], state=e.state)


class _LiveOnTerminal:
    """A Rich live region while a wait runs, on a terminal only (off one, lines are printed);
    leaving it, even on Ctrl-C or a signal, restores the terminal."""

    term: Terminal
    _live: Any = None

    def _drawing(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:  # the View or MultiView itself
        if self.term.is_tty:
            from rich.live import Live

            self._live = Live(self._drawing(), console=self.term.console, transient=True,
                              auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)


class View(_LiveOnTerminal):
    """Context manager: ``with View(term, watch) as view: view.update(u)``."""

    def __init__(self, term: Terminal, watch: Watch, *, interval: float) -> None:
        self.term, self.watch, self.interval = term, watch, interval
        self._live = None

    def _drawing(self) -> Any:
        return self._panel()

    def update(self, update: Update) -> None:
        if self._live is not None:
            self._live.update(self._panel(update), refresh=True)
            return
        job_id = self.watch.job_id
        if update.retry_error:
            self.term.note(f"{job_id}  poll failed ({update.retry_error}); retrying in {self.interval:g}s")
            return
        for e in update.new_evaluations:
            self.term.note(f"{job_id}  {evaluation_line(self.watch, e)}")
        if update.status_changed:
            where = progress(update.job)
            self.term.note(f"{job_id}  {update.job.get('status')}" + (f" · {where}" if where else ""))

    def _panel(self, update: Update | None = None) -> Any:
        from rich.console import Group
        from rich.text import Text

        from ftctl.output import chart as charts
        from ftctl.output.report import unicode_ok

        watch, job = self.watch, self.watch.job
        status = str(job.get("status") or "…")
        head = Text.assemble((watch.job_id, "bold"), "  ", (status, "yellow"), "  ", progress(job))
        lines: list[Any] = [head]
        done, total = job.get("steps_completed"), job.get("total_steps")
        if isinstance(done, int) and isinstance(total, int) and total:
            width = max(10, min(60, self.term.width - 2))
            filled = round(width * min(done, total) / total)
            bar = "━" if unicode_ok(self.term) else "#"
            lines.append(Text.assemble((bar * filled, "cyan"), (bar * (width - filled), "dim")))
        if watch.evaluations:
            last = watch.evaluations[-1]
            lines.append(Text(f"latest eval_loss {fmt_loss(last.eval_loss)} at step {last.step} (eval {last.eval})"))
        rule = rule_text(watch)
        if rule:
            lines.append(Text(" · ".join(rule), "cyan"))
        if update is not None and update.retry_error:
            lines.append(Text(f"poll failed ({update.retry_error}); retrying", "yellow"))
        if watch.evaluations:
            analysis = watch.analysis()
            drawn = charts.from_analysis(analysis, width=self.term.width, height=8, unicode=unicode_ok(self.term))
            lines.append(drawn.text() if self.term.color else Text("\n".join(drawn.lines())))
        lines.append(Text("Ctrl-C stops waiting; the job keeps running.", "dim"))
        return Group(*lines)


class MultiView(_LiveOnTerminal):
    """Several jobs at once: on a terminal one live block (a few lines per job: id, status and a
    progress bar, then the rule's state); off a terminal the same lines as ``View``, each prefixed
    by its job id. ``update(watch, update)``."""

    def __init__(self, term: Terminal, watches: list[Watch], *, interval: float) -> None:
        self.term, self.watches, self.interval = term, watches, interval
        self._lines = {w.job_id: View(term, w, interval=interval) for w in watches}
        self._live = None
        self._retry: dict[str, str] = {}

    def _drawing(self) -> Any:
        return self._block()

    def update(self, watch: Watch, update: Update) -> None:
        if self._live is None:
            self._lines[watch.job_id].update(update)
            return
        if update.retry_error:
            self._retry[watch.job_id] = update.retry_error
        else:
            self._retry.pop(watch.job_id, None)
        self._live.update(self._block(), refresh=True)

    def _block(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        from ftctl.output.report import unicode_ok

        bar_char = "━" if unicode_ok(self.term) else "#"
        id_w = max(len(w.job_id) for w in self.watches)
        lines: list[Any] = []
        for watch in self.watches:
            job = watch.job
            status = str(job.get("status") or "…")
            done, total = job.get("steps_completed"), job.get("total_steps")
            bar = Text()
            if isinstance(done, int) and isinstance(total, int) and total:
                filled = round(20 * min(done, total) / total)
                bar = Text.assemble((bar_char * filled, "cyan"), (bar_char * (20 - filled), "dim"))
            lines.append(Text.assemble((watch.job_id.ljust(id_w), "bold"), "  ", (status.ljust(10), "yellow"), " ",
                                       bar, " ", progress(job)))
            detail = []
            if watch.evaluations:
                last = watch.evaluations[-1]
                detail.append(f"latest {fmt_loss(last.eval_loss)} @ step {last.step}")
            detail += rule_text(watch)
            if watch.job_id in self._retry:
                detail.append(f"poll failed ({self._retry[watch.job_id]}); retrying")
            if detail:
                lines.append(Text(" " * (id_w + 2) + " · ".join(detail), "cyan"))
        lines.append(Text("Ctrl-C stops waiting; the jobs keep running.", "dim"))
        return Group(*lines)
