"""Several runs side by side (``ftctl compare``, the report's comparison table): the settings each
ran with, which of them differ, and how each ended. Pure: no I/O, no printing.

The settings come from the job object the API returns (learning rate, epochs, evaluations, batch
size, ...) and, for early stopping, from the reading of the history (what ftctl recorded at
create, else the server's defaults: ``Analysis.settings_source`` says which). A saved history
(``--from-file``) knows only the early-stopping settings and the sizes; the rest is None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftctl.analysis import Analysis

NANO = 1e9  # total_price is in nano-dollars (docs/api.md)

# (name in the JSON, label for people): the order of the settings table.
SETTINGS = (
    ("model", "model"),
    ("early_stopping", "early stopping"),
    ("patience", "patience"),
    ("min_delta", "min_delta"),
    ("warmup_evals", "warmup evals"),
    ("learning_rate", "learning rate"),
    ("lr_scheduler", "lr scheduler"),
    ("n_epochs", "epochs"),
    ("n_evals", "evaluations"),
    ("batch_size", "batch size"),
    ("warmup_ratio", "lr warmup ratio"),
    ("weight_decay", "weight decay"),
    ("max_grad_norm", "max grad norm"),
    ("training_method", "training method"),
    ("training_type", "training type"),
    ("random_seed", "random seed"),
    ("training_file", "training file"),
    ("validation_file", "validation file"),
)


@dataclass(frozen=True)
class Compared:
    """One run as a report or a comparison sees it; ``events``: its event log, when fetched."""

    job_id: str | None
    analysis: Analysis
    events: list[dict[str, Any]] | None = None

    @property
    def job(self) -> dict[str, Any]:
        return self.analysis.job

    def settings(self) -> dict[str, Any]:
        job, a = self.job, self.analysis
        scheduler = job.get("lr_scheduler")
        method = job.get("training_method")
        kind = job.get("training_type")
        on = a.enabled
        return {
            "model": job.get("model"),
            "early_stopping": on,
            "patience": a.settings.patience if on is not False else None,
            "min_delta": a.settings.min_delta if on is not False else None,
            "warmup_evals": a.settings.warmup_evals if on is not False else None,
            "learning_rate": job.get("learning_rate"),
            "lr_scheduler": scheduler.get("lr_scheduler_type") if isinstance(scheduler, dict) else scheduler,
            "n_epochs": job.get("n_epochs"),
            "n_evals": job.get("n_evals"),
            "batch_size": job.get("batch_size"),
            "warmup_ratio": job.get("warmup_ratio"),
            "weight_decay": job.get("weight_decay"),
            "max_grad_norm": job.get("max_grad_norm"),
            "training_method": method.get("method") if isinstance(method, dict) else method,
            "training_type": _training_type(kind),
            "random_seed": job.get("random_seed"),
            "training_file": job.get("training_file"),
            "validation_file": job.get("validation_file"),
        }

    def outcome(self) -> dict[str, Any]:
        a, job = self.analysis, self.job
        es = a.early_stopping()
        price = job.get("total_price")
        cost = price / NANO if isinstance(price, (int, float)) and not isinstance(price, bool) else None
        return {
            "status": job.get("status"),
            "fired": es["fired"],
            "reason": es["reason"],
            "halt_step": es["halt_step"],
            "best_step": es["best_step"],
            "best_eval_loss": es["best_eval_loss"],
            "steps_run": a.actual_steps,
            "total_steps": es["total_steps"],
            "steps_refunded": es["steps_refunded"],
            "cost_usd": cost,
            "evaluations": len(a.evaluations),
            "settings_source": a.settings_source,
            "replay_agrees": es["replay_agrees"],
        }


def _training_type(kind: Any) -> str | None:
    if not isinstance(kind, dict):
        return kind if isinstance(kind, str) else None
    name = str(kind.get("type") or "")
    if name.lower() == "lora" and kind.get("lora_r") is not None:
        return f"LoRA r={kind.get('lora_r')}"
    return name or None


def differing(items: list[Compared]) -> list[str]:
    """The settings whose values are not the same for every run (unknown counts as a value)."""
    all_settings = [c.settings() for c in items]
    return [name for name, _ in SETTINGS if len({repr(s[name]) for s in all_settings}) > 1]


def compare(items: list[Compared]) -> dict[str, Any]:
    """``compare --json``: every run's settings and outcome, and the names of the settings that differ
    (the histories themselves: ``metrics ID --json``)."""
    return {
        "differing_settings": differing(items),
        "jobs": [{"job_id": c.job_id, "settings": c.settings(), "outcome": c.outcome()} for c in items],
    }
