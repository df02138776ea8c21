"""The create request's range checks, shared by the CLI (before anything is sent) and the
simulator (on what it receives, as the real server does): one rule, one wording.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ftctl import early_stopping
from ftctl.errors import InvalidInput

SUFFIX_MAX = 40
# The largest whole number a request may carry (a signed 32-bit int). No real job comes near it;
# it stops typos like 1e20 epochs or a 30-digit seed before they reach a server or the store.
WHOLE_MAX = 2**31 - 1
_ID_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")
# The shape of what a server receives (its types; the ranges are checked below). The CLI always
# builds these right; a hand-written body or another client may not, and gets 400, never a 500.
_OBJECTS = ("lr_scheduler", "training_type", "training_method", "multimodal_params")
_STRINGS = ("wandb_key", "wandb_api_key", "wandb_base_url", "wandb_project_name", "wandb_name", "wandb_entity",
            "from_hf_model", "hf_model_revision", "hf_api_token", "hf_output_repo_name")
_BOOLS = ("packing",)


def check_body(body: dict[str, Any]) -> list[str]:
    """Raise ``InvalidInput`` naming the field, the value and the rule; return warnings."""
    _check_types(body)
    for key in ("training_file", "validation_file", "model", "from_checkpoint"):
        if key in body and body[key] is not None and body[key] != "":
            check_id(key, body[key])
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


def check_estimate_body(body: dict[str, Any]) -> None:
    """``POST /v1/fine-tunes/estimate-price``: the fields a price depends on."""
    if not body.get("training_file"):
        raise InvalidInput("training_file is required to estimate a price")
    check_id("training_file", body["training_file"])
    _int(body, "n_epochs", minimum=1)
    _int(body, "n_evals", minimum=0)


def _check_types(body: dict[str, Any]) -> None:
    for key in _OBJECTS:
        _typed(body, key, dict, "a JSON object")
    _typed(body.get("lr_scheduler") or {}, "lr_scheduler_args", dict, "a JSON object")
    for key in _STRINGS:
        _typed(body, key, str, "a string")
    for key in _BOOLS:
        _typed(body, key, bool, "true or false")
    method = body.get("training_method") or {}
    for key in ("dpo_normalize_logratios_by_length", "dpo_reference_free"):
        _typed(method, key, bool, "true or false")
    if method.get("train_on_inputs", "auto") != "auto":
        _typed(method, "train_on_inputs", bool, "true, false or \"auto\"")
    _typed(body.get("training_type") or {}, "lora_trainable_modules", str, "a string")


def _typed(obj: dict[str, Any], key: str, kind: type, what: str) -> None:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise InvalidInput(f"{key} must be {what} (got {_show(value)})")


def check_id(key: str, value: Any) -> None:
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
