"""The create request: from the user's options to the body the vendor SDK sends, and its checks.

``build_body`` shapes the body exactly as together 3.1.1 does (``together-api.md`` §3): the knobs
the SDK always sends carry its defaults, unset ones are omitted so the server applies its own, and
``lr_scheduler``, ``training_type`` and ``training_method`` are nested the same way.
``check_body`` is the one set of range checks: the CLI runs it before sending anything, and the
simulator runs it on what it receives, as the real server does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ftctl import early_stopping
from ftctl.errors import InvalidInput

SUFFIX_MAX = 40
# The largest whole number a request may carry (a signed 32-bit int). No real job comes near it;
# it stops typos like 1e20 epochs or a 30-digit seed before they reach a server or the store.
WHOLE_MAX = 2**31 - 1
_ID_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass
class CreateOptions:
    """What the user asked for; ``None`` means "not given"."""

    training_file: str
    model: str | None = None
    from_checkpoint: str | None = None
    validation_file: str | None = None
    n_epochs: int = 1
    n_evals: int = 0
    n_checkpoints: int = 1
    batch_size: str = "max"
    learning_rate: float = 1e-5
    lr_scheduler_type: str = "cosine"
    min_lr_ratio: float = 0.0
    scheduler_num_cycles: float = 0.5
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    packing: bool = True
    max_seq_length: int | None = None
    gradient_accumulation_steps: int | None = None
    lora: bool | None = None
    lora_r: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    lora_trainable_modules: str | None = None
    training_method: str = "sft"
    train_on_inputs: str | None = None
    dpo_beta: float | None = None
    dpo_normalize_logratios_by_length: bool | None = None
    dpo_reference_free: bool | None = None
    rpo_alpha: float | None = None
    simpo_gamma: float | None = None
    suffix: str | None = None
    random_seed: int | None = None
    wandb_api_key: str | None = None
    wandb_project_name: str | None = None
    wandb_name: str | None = None
    wandb_entity: str | None = None
    wandb_base_url: str | None = None
    early_stopping: bool = False
    patience: int | None = None
    min_delta: float | None = None
    warmup_evals: int | None = None


def build_body(o: CreateOptions) -> dict[str, Any]:
    """The JSON body, in the SDK's field order. Raises ``InvalidInput`` for options that clash."""
    if bool(o.model) == bool(o.from_checkpoint):
        raise InvalidInput("exactly one of --model and --from-checkpoint is required "
                           f"(got model={o.model!r}, from_checkpoint={o.from_checkpoint!r})")
    method = o.training_method.lower()
    dpo_given = [flag for flag, value in (
        ("--dpo-beta", o.dpo_beta), ("--rpo-alpha", o.rpo_alpha), ("--simpo-gamma", o.simpo_gamma),
        ("--dpo-normalize-logratios-by-length", o.dpo_normalize_logratios_by_length),
        ("--dpo-reference-free", o.dpo_reference_free)) if value is not None]
    if method != "dpo" and dpo_given:
        raise InvalidInput(f"{dpo_given[0]} applies only to --training-method dpo (got {method})")
    if method == "dpo" and o.train_on_inputs is not None:
        raise InvalidInput("--train-on-inputs applies only to --training-method sft (got dpo)")
    lora_given = [flag for flag, value in (
        ("--lora-r", o.lora_r), ("--lora-alpha", o.lora_alpha), ("--lora-dropout", o.lora_dropout),
        ("--lora-trainable-modules", o.lora_trainable_modules)) if value is not None]
    if o.lora is False and lora_given:
        raise InvalidInput(f"{lora_given[0]} applies only to LoRA training (got --no-lora)")

    body: dict[str, Any] = {"training_file": o.training_file}
    if o.validation_file is not None:
        body["validation_file"] = o.validation_file
    body["packing"] = o.packing
    if o.model:
        body["model"] = o.model
    body["n_epochs"] = o.n_epochs
    body["learning_rate"] = o.learning_rate
    body["lr_scheduler"] = {
        "lr_scheduler_type": o.lr_scheduler_type,
        "lr_scheduler_args": {"min_lr_ratio": o.min_lr_ratio}
        | ({"num_cycles": o.scheduler_num_cycles} if o.lr_scheduler_type == "cosine" else {}),
    }
    body["warmup_ratio"] = o.warmup_ratio
    body["max_grad_norm"] = o.max_grad_norm
    body["weight_decay"] = o.weight_decay
    body["n_checkpoints"] = o.n_checkpoints
    body["n_evals"] = o.n_evals
    body["batch_size"] = _batch_size(o.batch_size)
    optional = {
        "max_seq_length": o.max_seq_length,
        "gradient_accumulation_steps": o.gradient_accumulation_steps,
        "suffix": o.suffix,
        "random_seed": o.random_seed,
        "wandb_key": o.wandb_api_key,  # the SDK's wire name for wandb_api_key
        "wandb_base_url": o.wandb_base_url,
        "wandb_project_name": o.wandb_project_name,
        "wandb_name": o.wandb_name,
        "wandb_entity": o.wandb_entity,
        "from_checkpoint": o.from_checkpoint,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    body["early_stopping_enabled"] = o.early_stopping
    for key, value in (("early_stopping_patience", o.patience), ("early_stopping_min_delta", o.min_delta),
                       ("early_stopping_warmup_evals", o.warmup_evals)):
        if value is not None:
            body[key] = value
    if o.lora or (o.lora is None and lora_given):
        body["training_type"] = {"type": "Lora"} | {k: v for k, v in (
            ("lora_r", o.lora_r),
            ("lora_alpha", int(o.lora_alpha) if o.lora_alpha is not None and float(o.lora_alpha).is_integer()
             else o.lora_alpha),
            ("lora_dropout", 0.0 if o.lora_dropout is None else o.lora_dropout),
            ("lora_trainable_modules", o.lora_trainable_modules or "all-linear")) if v is not None}
    elif o.lora is False:
        body["training_type"] = {"type": "Full"}
    if method == "dpo":
        body["training_method"] = {"method": "dpo"} | {k: v for k, v in (
            ("dpo_beta", o.dpo_beta),
            ("dpo_normalize_logratios_by_length", bool(o.dpo_normalize_logratios_by_length)),
            ("dpo_reference_free", o.dpo_reference_free),
            ("rpo_alpha", o.rpo_alpha), ("simpo_gamma", o.simpo_gamma)) if v is not None}
    else:
        body["training_method"] = {"method": method, "train_on_inputs": _train_on_inputs(o.train_on_inputs)}
    return body


def _batch_size(value: str | int) -> str | int:
    text = str(value).strip().lower()
    if text == "max":
        return "max"
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"--batch-size must be a whole number >= 1 or 'max' (got {value!r})") from None


def _train_on_inputs(value: str | None) -> bool | str:
    text = (value or "auto").strip().lower()
    choices = {"true": True, "false": False, "auto": "auto"}
    if text not in choices:
        raise InvalidInput(f"--train-on-inputs must be true, false or auto (got {value!r})")
    return choices[text]


# --- range checks, shared by the CLI (before sending) and the simulator (as the server) -----------


def check_body(body: dict[str, Any]) -> list[str]:
    """Raise ``InvalidInput`` naming the field, the value and the rule; return warnings."""
    for key in ("training_file", "validation_file", "model", "from_checkpoint"):
        if key in body and body[key] is not None and body[key] != "":
            _check_id(key, body[key])
    if not body.get("training_file"):
        raise InvalidInput("training_file is required (got none)")
    if bool(body.get("model")) == bool(body.get("from_checkpoint")):
        raise InvalidInput("exactly one of model and from_checkpoint is required")
    _int(body, "n_epochs", minimum=1)
    _int(body, "n_evals", minimum=0)
    _int(body, "n_checkpoints", minimum=1)
    _int(body, "max_seq_length", minimum=1)
    _int(body, "gradient_accumulation_steps", minimum=1)
    _int(body, "random_seed", minimum=0)
    if body.get("batch_size", "max") != "max":
        _int(body, "batch_size", minimum=1)
    _number(body, "learning_rate", low=0.0, low_open=True)
    _number(body, "warmup_ratio", low=0.0, high=1.0)
    _number(body, "max_grad_norm", low=0.0)
    _number(body, "weight_decay", low=0.0)
    scheduler = body.get("lr_scheduler") or {}
    if scheduler:
        if scheduler.get("lr_scheduler_type") not in ("linear", "cosine"):
            raise InvalidInput("lr_scheduler_type must be linear or cosine "
                               f"(got {scheduler.get('lr_scheduler_type')!r})")
        args = scheduler.get("lr_scheduler_args") or {}
        _number(args, "min_lr_ratio", low=0.0, high=1.0)
        _number(args, "num_cycles", low=0.0, low_open=True)
    training_type = body.get("training_type") or {}
    if training_type:
        if str(training_type.get("type", "")).lower() not in ("lora", "full"):
            raise InvalidInput(f"training_type.type must be Lora or Full (got {training_type.get('type')!r})")
        _int(training_type, "lora_r", minimum=1)
        _number(training_type, "lora_alpha", low=0.0, low_open=True)
        _number(training_type, "lora_dropout", low=0.0, high=1.0, high_open=True)
    method = body.get("training_method") or {"method": "sft"}
    if method.get("method") not in ("sft", "dpo"):
        raise InvalidInput(f"training_method must be sft or dpo (got {method.get('method')!r})")
    _number(method, "dpo_beta", low=0.0, low_open=True)
    _number(method, "rpo_alpha", low=0.0)
    _number(method, "simpo_gamma", low=0.0)
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > SUFFIX_MAX
                               or not re.fullmatch(r"[A-Za-z0-9._-]*", suffix)):
        raise InvalidInput(f"suffix must be at most {SUFFIX_MAX} letters, digits, '.', '_' or '-' "
                           f"(got {_show(suffix)})")
    n_evals = body.get("n_evals") or 0
    enabled = body.get("early_stopping_enabled", False)
    if not isinstance(enabled, bool):
        raise InvalidInput(f"early_stopping_enabled must be true or false (got {_show(enabled)})")
    warnings = early_stopping.check_parameters(
        enabled=enabled,
        patience=body.get("early_stopping_patience"),
        min_delta=body.get("early_stopping_min_delta"),
        warmup_evals=body.get("early_stopping_warmup_evals"),
        validation_file=body.get("validation_file"),
        n_evals=n_evals,
    )
    if n_evals > 0 and not body.get("validation_file"):
        raise InvalidInput(f"n_evals > 0 requires a validation file (got n_evals={n_evals} "
                           "and no validation_file)")
    if body.get("validation_file") and not n_evals:
        warnings.append("a validation file was given but n_evals is 0, so it will not be used")
    return warnings


def _check_id(key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 512 or _ID_FORBIDDEN.search(value):
        raise InvalidInput(f"{key} must be a non-empty id of at most 512 characters with no spaces "
                           f"or control characters (got {_show(value)})")


def _int(obj: dict[str, Any], key: str, *, minimum: int) -> None:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be a whole number (got {_show(value)})")
    if value < minimum:
        raise InvalidInput(f"{key} must be >= {minimum} (got {value})")
    if value > WHOLE_MAX:
        raise InvalidInput(f"{key} must be <= {WHOLE_MAX} (got {value})")


def _number(obj: dict[str, Any], key: str, *, low: float, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> None:
    value = obj.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{key} must be a finite number (got {_show(value)})")
    if (value <= low if low_open else value < low) or (
            high is not None and (value >= high if high_open else value > high)):
        low_text = f"> {low:g}" if low_open else f">= {low:g}"
        rule = low_text if high is None else f"{low_text} and {'<' if high_open else '<='} {high:g}"
        raise InvalidInput(f"{key} must be {rule} (got {value:g})")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
