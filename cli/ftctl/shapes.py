"""The API's objects as plain type checks, without pydantic: an answer whose known fields hold
exactly the JSON types ``ftctl.models`` declares (numbers, strings, booleans, objects, null) is one
pydantic would accept as it is, so the HTTP backend checks it here and imports pydantic (some
70 ms of start-up) only for an answer that is not plainly valid, to accept it leniently or name
the wrong field. ``tests/test_scale.py`` derives this table from the models and compares.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, Union

_NONE = type(None)
STR = (str, _NONE)
INT = (int, _NONE)  # bool is not int here (type(), not isinstance): such values go to pydantic
FLOAT = (int, float, _NONE)
BOOL = (bool, _NONE)
INT_OR_STR = (int, str, _NONE)
OBJECT = (dict, _NONE)
REQUIRED_STR = (str,)
REQUIRED_INT = (int,)
Check = Union[tuple, tuple[str, str]]  # types, or ("list", the items' shape)

SHAPES: dict[str, dict[str, Any]] = {
    "Event": {
        "object": STR, "created_at": STR, "message": STR, "type": STR, "level": STR, "step": INT,
        "total_steps": INT, "checkpoint_path": STR, "model_path": STR, "param_count": INT,
        "token_count": INT, "wandb_url": STR, "training_offset": INT, "hash": STR,
        "early_stopping_best_step": INT, "early_stopping_best_metric_value": FLOAT,
    },
    "Checkpoint": {
        "step": REQUIRED_INT, "path": STR, "created_at": STR, "checkpoint_type": STR, "checkpoint": STR,
    },
    "MetricsRow": {
        "timestamp": FLOAT, "train/global_step": FLOAT, "train/epoch": FLOAT, "train/loss": FLOAT,
        "train/learning_rate": FLOAT, "train/grad_norm": FLOAT, "eval/loss": FLOAT,
    },
    "Job": {
        "id": REQUIRED_STR, "status": REQUIRED_STR, "user_id": STR, "created_at": STR, "updated_at": STR,
        "started_at": STR, "model": STR, "model_output_name": STR, "suffix": STR, "training_file": STR,
        "validation_file": STR, "n_epochs": INT, "n_evals": INT, "n_checkpoints": INT,
        "batch_size": INT_OR_STR, "learning_rate": FLOAT, "lr_scheduler": OBJECT, "warmup_ratio": FLOAT,
        "max_grad_norm": FLOAT, "weight_decay": FLOAT, "training_method": OBJECT, "training_type": OBJECT,
        "random_seed": INT, "total_steps": INT, "steps_completed": INT, "evals_completed": INT,
        "epochs_completed": INT, "eval_steps": INT, "early_stopped": BOOL, "early_stopping_best_step": INT,
        "early_stopping_best_metric": FLOAT, "total_price": INT, "token_count": INT, "param_count": INT,
        "progress": OBJECT, "wandb_url": STR, "events": ("list", "Event"),
    },
}
_REQUIRED = {name: [k for k, t in fields.items() if t in (REQUIRED_STR, REQUIRED_INT)]
             for name, fields in SHAPES.items()}
# The types every field of a shape allows, for shapes with no required or nested field (a metrics
# row: a number or null): items holding only such values pass without looking at a single name.
_EVERY_FIELD_ALLOWS = {name: common for name, fields in SHAPES.items()
                       if not _REQUIRED[name] and all(types[0] != "list" for types in fields.values())
                       and len(common := frozenset.intersection(*map(frozenset, fields.values()))) > 1}


def plainly_valid(shape: str, items: list[Any]) -> bool:
    """Whether every item is a dict whose fields of ``shape`` hold exactly the declared types."""
    if shape not in SHAPES:  # a model not restated here: pydantic checks it
        return False
    common = _EVERY_FIELD_ALLOWS.get(shape)
    if common and set(map(type, items)) <= {dict} \
            and set(map(type, chain.from_iterable(map(dict.values, items)))) <= common:
        return True  # 100,000 rows in some 20 ms (the loop below takes 50)
    allowed = SHAPES[shape].get
    required = _REQUIRED[shape]
    for item in items:
        if not isinstance(item, dict):  # a dict subclass (wire.Encoded) reads like one
            return False
        for name, value in item.items():  # the fields an item has (4 of a metrics row's 7), not all
            types = allowed(name)
            if types is None or type(value) in types:
                continue
            if types[0] == "list" and type(value) is list and plainly_valid(types[1], value):
                continue
            return False
        for name in required:
            if name not in item:
                return False
    return True


def already_typed(shape: str, data: Any) -> dict[str, Any] | None:
    """A copy of ``data`` when it is already what ``models.typed`` would make of it (plainly valid,
    every number field's value a float where the model says float, no nested events to fill in),
    so a reading needs no pydantic; None: ask ``models.typed``."""
    # isinstance: the simulator's jobs are wire.Encoded, a dict that keeps its JSON text
    if not isinstance(data, dict) or not plainly_valid(shape, [data]) or data.get("events"):
        return None
    fields = SHAPES[shape]
    if any(type(data.get(name)) is int for name, types in fields.items() if types is FLOAT):
        return None  # typed() would make it a float
    return dict(data)
