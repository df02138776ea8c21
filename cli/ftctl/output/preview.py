"""The plan of steps and the price, in words, before a job starts (``create``, ``create --dry-run``).
Lines for stderr: the dry run's stdout stays the exact request body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftctl.datasets.plan import Plan
    from ftctl.preview import Preview

# The vendor CLI's words for an estimate it cannot give (docs/api.md, "estimate-price").
UNAVAILABLE = {
    "multimodal_dataset": "Price estimation is currently not available for multimodal datasets.",
    "train_file_not_validated": "Price estimation is not available because the training file has not been "
                                "validated yet.",
    "eval_file_not_validated": "Price estimation is not available because the evaluation file has not been "
                               "validated yet.",
    "train_file_invalid": "Price estimation is not available because the training file is invalid. If you "
                          "proceed, your job will be cancelled.",
    "eval_file_invalid": "Price estimation is not available because the evaluation file is invalid. If you "
                         "proceed, your job will be cancelled.",
}


def _tokens(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else (f"{n / 1e3:.1f}k" if n >= 1e3 else str(n))


def _steps(steps: tuple[int, ...], limit: int = 8) -> str:
    shown = ", ".join(map(str, steps[:limit]))
    return shown + (f", ... ({len(steps)} in all)" if len(steps) > limit else "")


def plan_lines(plan: Plan, body: dict[str, Any], batch: int | None, max_seq_length: int) -> list[str]:
    packing = "packing" if body.get("packing", True) is not False else "no packing"
    epochs = body.get("n_epochs") or 1
    lines = [f"Plan: {plan.examples} examples, ~{_tokens(plan.approx_tokens)} tokens: {plan.steps_per_epoch} "
             f"steps per epoch x {epochs} epochs = {plan.total_steps} steps (batch {batch}, max_seq_length "
             f"{max_seq_length}, {packing})"]
    if plan.eval_steps:
        lines.append(f"  evaluations: {len(plan.eval_steps)}, one every {plan.eval_every:g} steps "
                     f"(steps {_steps(plan.eval_steps)})")
    if plan.checkpoint_steps:
        lines.append(f"  checkpoints at steps {_steps(plan.checkpoint_steps)} (the last is the final model)")
    if plan.earliest_halt_step is not None:
        lines.append(f"  early stopping: the earliest halt is evaluation {plan.earliest_halt_eval} (step "
                     f"{plan.earliest_halt_step}); at most {plan.max_steps_refunded} of {plan.total_steps} steps "
                     "refunded")
    elif body.get("early_stopping_enabled"):
        lines.append("  early stopping: too few evaluations for patience to ever halt the run")
    return lines


def price_lines(preview: Preview) -> list[str]:
    estimate = preview.estimate
    if estimate is None:
        return [f"Price: no estimate ({preview.estimate_error})"] if preview.estimate_error else []
    if estimate.get("estimation_available") is False or not isinstance(estimate.get("estimated_total_price"),
                                                                       (int, float)):
        reason = estimate.get("unavailable_reason")
        return [f"Price: {UNAVAILABLE.get(reason, 'Price estimation is not available for this job.')}"]
    price = estimate["estimated_total_price"]
    tokens = estimate.get("estimated_train_token_count")
    line = f"Price: estimated ${price:,.2f}"
    if isinstance(tokens, (int, float)):
        line += f" ({_tokens(int(tokens))} training tokens)"
    limit = estimate.get("user_limit")
    if isinstance(limit, (int, float)):
        line += f"; your limit ${limit:,.2f}"
    lines = [line]
    worth = preview.refundable_usd()
    if worth is not None and preview.refundable_steps is not None:
        most, total = preview.refundable_steps
        share = (f"{most} of {total} steps" if preview.refund_unit == "steps"
                 else f"the steps of {most} of {total} evaluations")
        lines.append(f"  with early stopping, the most a halt can refund ({share}) would be worth ${worth:,.2f}")
    if estimate.get("allowed_to_proceed") is False:
        lines.append("  The estimated price is more than your credit limit and balance allow: the job would "
                     "likely be cancelled.")
    return lines


def lines(preview: Preview, body: dict[str, Any], *, dry_run: bool = True) -> list[str]:
    """The plan (on a dry run, why there is none) and the price, for stderr."""
    from ftctl.preview import DEFAULT_MAX_SEQ_LENGTH

    out = []
    if preview.plan is not None:
        out += plan_lines(preview.plan, body, preview.batch, body.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
    elif preview.plan_missing and dry_run:
        out.append(f"Plan: unknown here: {preview.plan_missing}")
    return out + price_lines(preview)
