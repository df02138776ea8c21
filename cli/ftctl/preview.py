"""What ``create`` (and ``create --dry-run``) says before a job starts: the plan of steps a local
training file implies (``ftctl.datasets.plan``) and the API's price estimate, with what the most
refundable steps would be worth under early stopping. Data only; ``output.views`` words it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftctl.datasets.plan import DEFAULT_MAX_SEQ_LENGTH, Plan
from ftctl.wire import Wire
SIM_MAX_BATCH = 8  # what batch_size "max" resolves to on the simulator (backends.simulator.backend.MAX_BATCH)


@dataclass
class Preview:
    plan: Plan | None = None
    plan_missing: str | None = None  # why there is no plan
    estimate: Wire | None = None
    estimate_error: str | None = None

    # (most steps a halt refunds, total steps); without a plan, in evaluations: (evals after the
    # earliest halt, n_evals), the same share of the steps up to rounding
    refundable_steps: tuple[int, int] | None = None
    refund_unit: str = "steps"
    batch: int | None = None  # the batch size the plan assumed

    def refundable_usd(self) -> float | None:
        """What the most steps a patience halt can refund would cost, at the estimate's price per step."""
        price = (self.estimate or {}).get("estimated_total_price")
        if self.refundable_steps is None or not self.refundable_steps[1] \
                or not isinstance(price, (int, float)) or isinstance(price, bool):
            return None
        return price * self.refundable_steps[0] / self.refundable_steps[1]

    def with_total(self, body: dict[str, Any], total_steps: int | None) -> None:
        """The most a patience halt refunds of a job of ``total_steps`` (None: unknown, so in
        evaluations: the halt at evaluation F of N leaves (N - F) / N of the steps unrun)."""
        from ftctl.datasets.plan import evenly_spaced

        n_evals = body.get("n_evals") or 0
        warmup = body.get("early_stopping_warmup_evals")
        first = max(1 if warmup is None else warmup, 1) + (body.get("early_stopping_patience") or 2)
        if not body.get("early_stopping_enabled") or first > n_evals:
            return
        if total_steps:
            self.refundable_steps = (total_steps - evenly_spaced(first, total_steps, n_evals), total_steps)
        elif total_steps is None:
            self.refundable_steps, self.refund_unit = (n_evals - first, n_evals), "evaluations"

    def to_json(self) -> dict[str, Any]:
        return {"plan": None if self.plan is None else self.plan.to_json(), "plan_missing": self.plan_missing,
                "estimate": self.estimate, "estimate_error": self.estimate_error,
                "refundable_steps": self.refundable_steps, "refundable_usd": self.refundable_usd()}


def batch_size(body: dict[str, Any], backend_name: str) -> int | None:
    value = body.get("batch_size", "max")
    if value == "max":
        return SIM_MAX_BATCH if backend_name == "sim" else None
    return value if isinstance(value, int) else None


def plan_for(body: dict[str, Any], *, backend_name: str, examples: int, tokens: int) -> Plan:
    from ftctl.datasets.plan import plan

    es = bool(body.get("early_stopping_enabled"))
    return plan(examples, tokens, batch_size=batch_size(body, backend_name) or SIM_MAX_BATCH,
                max_seq_length=body.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH,
                packing=body.get("packing", True) is not False, n_epochs=body.get("n_epochs") or 1,
                n_evals=body.get("n_evals") or 0, n_checkpoints=body.get("n_checkpoints") or 1,
                early_stopping=es, patience=body.get("early_stopping_patience") or 2,
                warmup_evals=1 if body.get("early_stopping_warmup_evals") is None
                else body["early_stopping_warmup_evals"])


def local_plan(body: dict[str, Any], *, backend_name: str, report: Any = None) -> tuple[Plan | None, str | None]:
    """The plan when the training file is a local path ftctl can read (``report``: its offline
    check, when already made); else why there is none."""
    value = body.get("training_file")
    if report is None and (not isinstance(value, str) or not Path(value).is_file()):
        return None, (f"the training file {value} is an id on the server; give a local path to see "
                      "the plan of steps")
    if batch_size(body, backend_name) is None:
        return None, "batch_size max depends on the model on this backend; give --batch-size N to see the plan"
    if report is None:
        from ftctl.datasets import check_path

        report = check_path(value)
    return plan_for(body, backend_name=backend_name, examples=report.num_samples or 0,
                    tokens=report.approx_tokens or 0), None
