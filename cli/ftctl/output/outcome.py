"""How a run ended, in one sentence: the words the CI report, the JUnit file and the GitHub
annotations share (``ftctl report``, and ``wait`` in GitHub Actions). Rendering only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftctl import early_stopping as es
from ftctl.output.numbers import fmt_loss
from ftctl.wire import FAILED_STATUSES, TERMINAL_STATUSES

if TYPE_CHECKING:
    from ftctl.comparison import Compared


def status(c: Compared) -> str:
    return str(c.job.get("status") or ("saved history" if c.job_id is None or "status" not in c.job else "unknown"))


def failed(c: Compared) -> bool:
    return c.job.get("status") in FAILED_STATUSES


def running(c: Compared) -> bool:
    return "status" in c.job and c.job.get("status") not in TERMINAL_STATUSES


def failure_reason(c: Compared) -> str | None:
    """The last error event's message (the event log says why a job failed)."""
    events = c.events if c.events is not None else c.job.get("events")
    for event in reversed(events or []):
        if isinstance(event, dict) and str(event.get("level") or "").lower() == "error" and event.get("message"):
            return str(event["message"])
    return None


def steps_text(c: Compared) -> str:
    a = c.analysis
    done = a.actual_steps if a.ended else c.job.get("steps_completed")
    total = a.total_steps
    if done is None:
        return "unknown"
    text = f"{done} of {total}" if total is not None else str(done)
    refunded = a.early_stopping()["steps_refunded"]
    return text + (f" ({refunded} refunded)" if refunded else "")


def best_text(c: Compared) -> str:
    a = c.analysis
    if a.best_eval_loss is None:
        return "none (no finite eval_loss)" if a.evaluations else "none yet"
    return f"{fmt_loss(a.best_eval_loss)} at step {a.best_step}"


def non_finite_halt(c: Compared) -> bool:
    a = c.analysis
    return a.fired and a.final.stopped and a.final.reason == es.NON_FINITE_EVAL_LOSS


def sentence(c: Compared) -> str:
    """``early stopped at step 72 (patience 2): best eval_loss 0.4213 at step 48; 48 of 120 steps refunded``."""
    a = c.analysis
    if failed(c):
        reason = failure_reason(c)
        head = f"ended {c.job.get('status')}" + (f": {reason}" if reason else "")
        done = c.job.get("steps_completed")
        return head + (f" (at step {done} of {a.total_steps})" if isinstance(done, int) and a.total_steps else "")
    if running(c):
        return f"still {c.job.get('status')}, at step {steps_text(c)}; best eval_loss so far {best_text(c)}"
    if a.fired:
        why = ("a non-finite eval_loss" if non_finite_halt(c) else f"patience {a.settings.patience}")
        refunded = a.early_stopping()["steps_refunded"]
        tail = f"; {refunded} of {a.total_steps} steps refunded" if refunded and a.total_steps else ""
        return f"early stopped at step {a.halt_step} ({why}): best eval_loss {best_text(c)}{tail}"
    if a.enabled is False:
        would = a.default_rule
        extra = (f" (the default rule would have halted at step {would.halt_step})"
                 if would is not None and would.fired else "")
        return f"ran every step, early stopping off{extra}: best eval_loss {best_text(c)}"
    return f"ran every step without stopping early: best eval_loss {best_text(c)}"

