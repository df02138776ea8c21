"""``--fields a,b``: keep only the named fields of what ``--json`` prints (it implies ``--json``).

The valid names are known per kind of object, before anything is fetched or sent, so a typo is
exit 2 before ``create`` or ``cancel`` acts, and the shell can complete them. They are plain
tuples, not read from ``ftctl.models``, so that checking and completing them never imports
pydantic (start-up budget); a test keeps them equal to the models' fields.
"""

from __future__ import annotations

from typing import Any, Iterable

from ftctl.errors import InvalidInput

KINDS: dict[str, tuple[str, ...]] = {
    # ftctl.models.Job (the API's fine-tune object)
    "job": (
        "id", "status", "user_id", "created_at", "updated_at", "started_at", "model", "model_output_name",
        "suffix", "training_file", "validation_file", "n_epochs", "n_evals", "n_checkpoints", "batch_size",
        "learning_rate", "lr_scheduler", "warmup_ratio", "max_grad_norm", "weight_decay", "training_method",
        "training_type", "random_seed", "total_steps", "steps_completed", "evals_completed",
        "epochs_completed", "eval_steps", "early_stopped", "early_stopping_best_step",
        "early_stopping_best_metric", "total_price", "token_count", "param_count", "progress", "wandb_url",
        "events"),
    # ftctl.models.Event
    "event": (
        "object", "created_at", "message", "type", "level", "step", "total_steps", "checkpoint_path",
        "model_path", "param_count", "token_count", "wandb_url", "training_offset", "hash",
        "early_stopping_best_step", "early_stopping_best_metric_value"),
    # `download ID --json` (ftctl.commands.download)
    "download": ("object", "id", "filename", "size", "checkpoint_step", "checkpoint_type"),
    # `delete ID --json`: the API's answer
    "deleted": ("message",),
    # ftctl.models.Checkpoint, then ftctl's additions (``ftctl.promotion.ADDED``)
    "checkpoint": ("step", "path", "created_at", "checkpoint_type", "checkpoint", "download_id", "promoted", "why"),
    # `metrics ID --json` (ftctl.jobs.metrics_json)
    "metrics": ("job_id", "evaluations", "early_stopping", "missing_eval_loss_steps", "failure"),
    # `explain ID --json` (ftctl.commands.explain)
    "explanation": ("job_id", "early_stopping", "failure", "what_if"),
    # `metrics ID --raw`: the API's response envelope
    "metrics_response": ("metrics",),
    # `create --dry-run`: the request body (ftctl.create_request.build_body)
    "request": (
        "training_file", "validation_file", "model", "from_checkpoint", "suffix", "n_epochs", "n_evals",
        "n_checkpoints", "batch_size", "learning_rate", "lr_scheduler", "warmup_ratio", "max_grad_norm",
        "weight_decay", "packing", "max_seq_length", "gradient_accumulation_steps", "random_seed",
        "training_type", "training_method", "early_stopping_enabled", "early_stopping_patience",
        "early_stopping_min_delta", "early_stopping_warmup_evals", "wandb_key", "wandb_base_url",
        "wandb_project_name", "wandb_name", "wandb_entity"),
    # ftctl.models.File (the API's file object, ``FileType`` spelled as on the wire)
    "file": ("id", "object", "created_at", "filename", "bytes", "purpose", "FileType", "Processed",
             "processing_status", "validation_report"),
    # `files delete ID --json`
    "file_deleted": ("id", "object", "deleted"),
    # `completion SHELL --json`
    "completion": ("shell", "script"),
    # `sim serve --json`: where the server listens
    "server": ("url", "home", "speed", "faults"),
    # `files check --json`: ftctl.datasets.FileReport.to_json
    "file_report": ("path", "ok", "format", "num_samples", "errors", "size_bytes", "approx_tokens"),
}


def names(kinds: str | Iterable[str]) -> list[str]:
    """The valid field names for one kind or several (a command that prints either), in order."""
    seen: dict[str, None] = {}
    for kind in (kinds,) if isinstance(kinds, str) else kinds:
        seen.update(dict.fromkeys(KINDS[kind]))
    return list(seen)


def parse(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [f.strip() for f in text.split(",") if f.strip()]


def check(fields: list[str], valid: Iterable[str]) -> None:
    valid = list(valid)
    listed = ", ".join(sorted(valid))
    if not fields:
        raise InvalidInput(f"--fields needs at least one field name; valid fields: {listed}")
    unknown = [f for f in fields if f not in valid]
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} for --fields; valid fields: {listed}")


def select(value: Any, fields: list[str], kind: str | None = None) -> Any:
    """Each object of ``value`` (one object or a list) reduced to ``fields``, in the order asked.

    Without a ``kind``, the valid names are the keys present in the data."""
    items = value if isinstance(value, list) else [value]
    if kind is not None:
        check(fields, KINDS[kind])
    else:
        present = {k: None for item in items if isinstance(item, dict) for k in item}
        if present or not fields:
            check(fields, present)

    def pick(item: Any) -> Any:
        return {f: item.get(f) for f in fields} if isinstance(item, dict) else item

    return [pick(i) for i in value] if isinstance(value, list) else pick(value)
