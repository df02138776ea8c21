"""Pydantic models of the API's objects, with the API's exact field names (``docs/api.md``).

Lenient on purpose (together-python #246, together-py #181): statuses, event types and levels are
plain strings, every field but the identifying ones is optional, and unknown fields are kept.
Backends hand the wire objects around as dicts; these models check them at the HTTP boundary and
give typed access where a command needs it. Garbage (a wrong type, a missing id) is a
``ResponseError`` naming the field, never a traceback.

Validation is lax (``"0.42"`` is a float, ``"120"`` an int), so the wire dict that passed may still
hold strings where numbers belong: whatever reads a job (analysis, views, wait) reads it through
``typed_job``, which gives every known field its model's type, never raises, and leaves the wire
object itself unchanged for ``--json``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ftctl.wire import TERMINAL_STATUSES
from ftctl.errors import ResponseError  # noqa: F401 (its home was here; importers keep working)




class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Event(_Lenient):
    object: Optional[str] = "fine-tune-event"
    created_at: Optional[str] = None
    message: Optional[str] = ""
    type: Optional[str] = None
    level: Optional[str] = None
    step: Optional[int] = None
    total_steps: Optional[int] = None
    checkpoint_path: Optional[str] = None
    model_path: Optional[str] = None
    param_count: Optional[int] = None
    token_count: Optional[int] = None
    wandb_url: Optional[str] = None
    training_offset: Optional[int] = None
    hash: Optional[str] = None
    early_stopping_best_step: Optional[int] = None
    early_stopping_best_metric_value: Optional[float] = None  # not "_metric" as on the job

    @property
    def kind(self) -> str:
        """The type, lower-cased: the legacy SDK spells them upper case."""
        return (self.type or "").lower()


class Job(_Lenient):
    id: str
    status: str
    user_id: Optional[str] = None
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    started_at: Optional[str] = None
    model: Optional[str] = None
    model_output_name: Optional[str] = None
    suffix: Optional[str] = None
    training_file: Optional[str] = None
    validation_file: Optional[str] = None
    n_epochs: Optional[int] = None
    n_evals: Optional[int] = None
    n_checkpoints: Optional[int] = None
    batch_size: Union[int, str, None] = None
    learning_rate: Optional[float] = None
    lr_scheduler: Optional[dict[str, Any]] = None
    warmup_ratio: Optional[float] = None
    max_grad_norm: Optional[float] = None
    weight_decay: Optional[float] = None
    training_method: Optional[dict[str, Any]] = None
    training_type: Optional[dict[str, Any]] = None
    random_seed: Optional[int] = None
    total_steps: Optional[int] = None
    steps_completed: Optional[int] = None
    evals_completed: Optional[int] = None
    epochs_completed: Optional[int] = None
    eval_steps: Optional[int] = None
    early_stopped: Optional[bool] = None
    early_stopping_best_step: Optional[int] = None
    early_stopping_best_metric: Optional[float] = None
    total_price: Optional[int] = None  # nano-dollars
    token_count: Optional[int] = None
    param_count: Optional[int] = None
    progress: Optional[dict[str, Any]] = None
    wandb_url: Optional[str] = None  # null until the W&B run starts
    events: Optional[list[Event]] = None

    @property
    def terminal(self) -> bool:
        return self.status.lower() in TERMINAL_STATUSES

    @property
    def method(self) -> str:
        return str((self.training_method or {}).get("method") or "sft")


class Checkpoint(_Lenient):
    step: int
    path: Optional[str] = None
    created_at: Optional[str] = None
    checkpoint_type: Optional[str] = None
    checkpoint: Optional[str] = None

    @property
    def final(self) -> bool:
        return "intermediate" not in (self.checkpoint_type or "").lower()


class MetricsRow(_Lenient):
    """One row of ``/metrics``: flat keys with slashes. Training and eval rows are separate."""

    timestamp: Optional[float] = None
    global_step: Optional[float] = Field(None, alias="train/global_step")
    epoch: Optional[float] = Field(None, alias="train/epoch")
    train_loss: Optional[float] = Field(None, alias="train/loss")
    learning_rate: Optional[float] = Field(None, alias="train/learning_rate")
    grad_norm: Optional[float] = Field(None, alias="train/grad_norm")
    eval_loss: Optional[float] = Field(None, alias="eval/loss")


class File(_Lenient):
    """``/v1/files`` objects (``docs/api.md`` §6); ``FileType`` keeps its wire spelling."""

    id: str
    object: Optional[str] = "file"
    created_at: Optional[int] = None
    filename: Optional[str] = None
    bytes: Optional[int] = None
    purpose: Optional[str] = None
    processing_status: Optional[str] = None
    validation_report: Optional[dict] = None


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: Any, what: str) -> M:
    """Validate one wire object, turning a pydantic error into one clear line."""
    if not isinstance(data, dict):
        raise ResponseError(f"unexpected response for {what}: expected a JSON object, got {_kind(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(object)"
        raise ResponseError(
            f"unexpected response for {what}: field {field!r} {first['msg'].lower()} "
            f"(got {_short(first.get('input'))})") from None


def parse_list(model: type[M], data: Any, key: str, what: str) -> list[M]:
    """``{key: [...]}`` (the API's list envelope) to models."""
    return [parse(model, item, what) for item in unwrap_list(data, key, what)]


def check_list(model: type[BaseModel], data: Any, key: str, what: str) -> list[Any]:
    """``{key: [...]}`` (the API's list envelope) checked against ``model``; its items, unchanged.
    Plainly valid items (``ftctl.shapes``) are not handed to pydantic one by one."""
    from ftctl.shapes import plainly_valid

    items = unwrap_list(data, key, what)
    if not plainly_valid(model.__name__, items):
        for item in items:
            parse(model, item, what)
    return items


def unwrap_list(data: Any, key: str, what: str) -> list[Any]:
    if isinstance(data, dict) and isinstance(data.get(key), list):
        return data[key]
    raise ResponseError(f"unexpected response for {what}: expected an object with a {key!r} list, "
                        f"got {_kind(data)}")


def typed(model: type[BaseModel], data: Any) -> dict[str, Any]:
    """A copy of the wire object ``data`` with each field ``model`` knows in its typed form: lax
    conversions applied (``"0.42"`` to 0.42, ``"72"`` to 72), a value that cannot be converted
    (a list for a number, an unparsable string) as None, nested objects as plain dicts. Never
    raises; anything but an object is an empty dict."""
    if not isinstance(data, dict):
        return {}
    out = dict(data)
    for key, adapter in _fields(model).items():
        if key in out and out[key] is not None:
            try:
                out[key] = adapter.dump_python(adapter.validate_python(out[key]), by_alias=True)
            except (ValidationError, ValueError, TypeError, OverflowError):
                out[key] = None
    return out


def typed_job(data: Any) -> dict[str, Any]:
    return typed(Job, data)


@lru_cache(maxsize=None)
def _fields(model: type[BaseModel]) -> dict[str, TypeAdapter]:
    return {(info.alias or name): TypeAdapter(info.annotation) for name, info in model.model_fields.items()}


def _kind(data: Any) -> str:
    if isinstance(data, dict):
        keys = sorted(repr(str(k))[1:-1] for k in data)[:6]  # escaped: a key may hold a newline
        return "an object with keys " + ", ".join(keys) if data else "an empty object"
    return {list: "a list", str: "a string", type(None): "null"}.get(type(data), type(data).__name__)


def _short(value: Any) -> str:
    from ftctl.redact import redact  # before the cut: a key cut short is harder to recognise

    text = redact(repr(value)[:10_000])
    return text if len(text) <= 60 else text[:57] + "..."
