"""Which checkpoint a job shipped, and why each checkpoint exists: read from the job and its
checkpoint list, the same on every backend (README, "Checkpoints").

``annotate`` returns the API's checkpoint objects with their fields unchanged and three of ftctl's
appended (``docs/contract.md``): ``download_id`` (what ``ftctl download`` takes: the job id for
the final model, ``ft-...:STEP`` for an intermediate one), ``promoted`` and ``why``.
"""

from __future__ import annotations

import math
from typing import Any

from ftctl.wire import Wire, wire_float

ADDED = ("download_id", "promoted", "why")


def is_final(checkpoint: Wire) -> bool:
    """The API marks the non-final checkpoints "Intermediate" in ``checkpoint_type``."""
    return "intermediate" not in str(checkpoint.get("checkpoint_type") or "").lower()


def download_id(job_id: str, checkpoint: Wire) -> str:
    return job_id if is_final(checkpoint) else f"{job_id}:{checkpoint.get('step')}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _loss(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"eval_loss {value:.4g}" if math.isfinite(value) else f"eval_loss {wire_float(value)}"
    return "eval_loss"


def promoted_reason(job: Wire, step: Any, *, early_stopping: bool) -> str:
    """Why the final model is the checkpoint of ``step``."""
    best = _int(job.get("early_stopping_best_step"))
    done, total = _int(job.get("steps_completed")), _int(job.get("total_steps"))
    if job.get("early_stopped"):
        halt = f"; halted at step {done}" if done is not None else ""
        if best is not None and best == step:
            return f"best {_loss(job.get('early_stopping_best_metric'))} (step {step}){halt}"
        return f"the step early stopping shipped{halt}"
    ran = f" of {total}" if total is not None and done == total else ""
    if early_stopping or best is not None:
        return f"last step{ran}: early stopping never fired"
    return f"last step{ran}: early stopping off"


def intermediate_reason(job: Wire, step: Any) -> str:
    from ftctl.datasets.plan import checkpoint_steps

    best = _int(job.get("early_stopping_best_step"))
    total, n = _int(job.get("total_steps")), _int(job.get("n_checkpoints"))
    scheduled = checkpoint_steps(total, n) if total and n else ()
    if best is not None and step == best:
        metric = _loss(job.get("early_stopping_best_metric"))
        if job.get("early_stopped"):
            return f"best {metric}: the promoted step"
        return f"best {metric} so far, kept for early stopping"
    if step in scheduled:
        return f"scheduled: {scheduled.index(step) + 1} of n_checkpoints {n}"
    return "saved by the server"


def annotate(job_id: str, job: Wire, checkpoints: list[Wire], sent: dict[str, Any] | None = None) -> list[Wire]:
    """``sent``: the create body ftctl sent, when it created the job (says whether early stopping
    was on when the job object does not)."""
    early_stopping = bool((sent or {}).get("early_stopping_enabled"))
    out = []
    for c in checkpoints:
        final = is_final(c)
        step = c.get("step")
        why = promoted_reason(job, step, early_stopping=early_stopping) if final else intermediate_reason(job, step)
        out.append({**c, "download_id": download_id(job_id, c), "promoted": final, "why": why})
    return out
