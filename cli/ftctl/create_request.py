"""The create request: from the user's options to the body the vendor SDK sends, and its checks.

``build_body`` shapes the body exactly as together 3.1.1 does (``docs/api.md`` §3): the knobs
the SDK always sends carry its defaults, unset ones are omitted so the server applies its own, and
``lr_scheduler``, ``training_type`` and ``training_method`` are nested the same way.
The range checks every body passes are ``ftctl.request_checks``, shared with the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ftctl.errors import InvalidInput


@dataclass
class CreateOptions:
    """What the user asked for; ``None`` means "not given"."""

    training_file: str
    model: str | None = None
    from_checkpoint: str | None = None
    validation_file: str | None = None
    n_epochs: int = 1
    n_evals: int | None = None  # None: 0, or DEFAULT_ES_EVALS with early stopping (default_n_evals)
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
    if not o.model and not o.from_checkpoint:
        raise InvalidInput("give the base model: --model (-m) NAME, or --from-checkpoint ft-ID to continue "
                           "a job (got neither)")
    if o.model and o.from_checkpoint:
        raise InvalidInput("give --model or --from-checkpoint, not both "
                           f"(got --model {o.model!r} and --from-checkpoint {o.from_checkpoint!r})")
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
    body["n_evals"] = default_n_evals(o) if o.n_evals is None else o.n_evals
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


DEFAULT_ES_EVALS = 10


def default_n_evals(o: CreateOptions) -> int:
    """``--n-evals`` when not given: 0, but with ``--early-stopping`` and a validation file 10, or
    patience + warmup_evals + 2 if that is more, so that the rule can fire before the last
    evaluation and refund steps (``--early-stopping`` alone used to fail on n_evals=0)."""
    if not (o.early_stopping and o.validation_file):
        return 0
    from ftctl import early_stopping as es

    patience = o.patience if isinstance(o.patience, int) and o.patience >= 1 else es.DEFAULT_PATIENCE
    warmup = o.warmup_evals if isinstance(o.warmup_evals, int) and o.warmup_evals >= 0 else es.DEFAULT_WARMUP_EVALS
    return max(DEFAULT_ES_EVALS, patience + warmup + 2)


# The create body's fields (and the words the shared checks use for them) -> the CLI flag. The
# checks in ``request_checks`` and ``early_stopping`` speak the API's words, as a server must; the
# CLI says them in the flags the user typed (``in_flag_words``).
FIELD_FLAGS: dict[str, str] = {
    **{name: "--" + name.replace("_", "-") for name in (
        "training_file", "validation_file", "model", "from_checkpoint", "suffix", "n_epochs", "n_evals",
        "n_checkpoints", "batch_size", "learning_rate", "lr_scheduler_type", "min_lr_ratio", "warmup_ratio",
        "max_grad_norm", "weight_decay", "max_seq_length", "gradient_accumulation_steps", "random_seed",
        "training_method", "lora_r", "lora_alpha", "lora_dropout", "lora_trainable_modules", "dpo_beta",
        "rpo_alpha", "simpo_gamma", "wandb_project_name", "wandb_name", "wandb_entity", "wandb_base_url")},
    "num_cycles": "--scheduler-num-cycles",
    "early_stopping_enabled": "--early-stopping",
    "early_stopping_patience": "--patience",
    "early_stopping_min_delta": "--min-delta",
    "early_stopping_warmup_evals": "--warmup-evals",
}
# the early-stopping rule's own words for its settings, and its name in its messages
_SHORT_WORDS = {"patience": "early_stopping_patience", "min_delta": "early_stopping_min_delta",
                "warmup_evals": "early_stopping_warmup_evals", "Early stopping": "early_stopping_enabled"}


def in_flag_words(text: str, typed: dict[str, str] | None = None) -> str:
    """``text`` with each field name replaced by its flag: the one the user typed (``typed``, for
    a hidden alias such as ``--early-stopping-patience`` or ``--lr``), else the listed one."""
    import re

    flags = {**FIELD_FLAGS, **(typed or {})}
    words = {**flags, **{word: flags[field] for word, field in _SHORT_WORDS.items()}}
    # not inside a path or a quoted value the user gave: "(got 'n_evals')" keeps its word
    pattern = re.compile(r"(?<![\w./'\"-])(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                         + r")(?![\w/'\"-])")
    return pattern.sub(lambda m: words[m.group(1)], text)


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


ESTIMATE_KEYS = ("training_file", "validation_file", "model", "from_checkpoint", "n_epochs", "n_evals",
                 "training_method", "training_type")


def estimate_body(body: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /v1/fine-tunes/estimate-price`` body for a create body: its keys, in the SDK's
    order, empty ones left out as the SDK's ``create()`` does (docs/api.md)."""
    return {k: body[k] for k in ESTIMATE_KEYS if body.get(k) not in (None, "")}
