"""A run's history saved to a file, for explaining it with no network (``--from-file``).

Two shapes are read: what ``ftctl metrics ID --json`` prints (the evaluations, and the
early-stopping object with the server's verdict and the settings), and the API's raw
``GET /metrics`` response ``{"metrics": [...]}`` (what ``ftctl metrics ID --raw`` prints), or just
its list of rows. No backend is opened.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from ftctl.errors import InvalidInput

SHAPES = "the output of `ftctl metrics ID --json`, or the API's {\"metrics\": [...]} (`ftctl metrics ID --raw`)"


@dataclass
class SavedHistory:
    job: dict[str, Any]  # what is known of the job: id, status, sizes, the server's verdict
    rows: list[dict[str, Any]]  # metrics rows, as the API returns them
    sent: dict[str, Any] | None  # the settings the job ran with, when the file records them


def read(path: str) -> SavedHistory:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise InvalidInput(f"cannot read --from-file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"--from-file {path} is not UTF-8 text; expected {SHAPES}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"--from-file {path} is not JSON ({exc.msg} at line {exc.lineno}); "
                           f"expected {SHAPES}") from None
    except RecursionError:  # [[[[...: deeper than any history, and than the parser's stack
        raise InvalidInput(f"--from-file {path} nests JSON too deeply to be a saved history; expected {SHAPES}") from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int_max_str_digits)
        raise InvalidInput(f"--from-file {path} holds a number too long to read ({str(exc).split(':')[0]}); "
                           f"expected {SHAPES}") from None
    return parse(data, name=path)


def parse(data: Any, *, name: str = "the file") -> SavedHistory:
    if isinstance(data, dict) and isinstance(data.get("evaluations"), list) \
            and isinstance(data.get("early_stopping"), dict):
        return _from_metrics_json(data, name)
    rows = data.get("metrics") if isinstance(data, dict) else data
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        if not any("eval/loss" in r for r in rows):
            raise InvalidInput(f"--from-file {name} has no evaluation rows (no \"eval/loss\"); expected {SHAPES}")
        return SavedHistory({}, rows, None)
    raise InvalidInput(f"--from-file {name} is not a saved history; expected {SHAPES}")


def _from_metrics_json(data: dict[str, Any], name: str) -> SavedHistory:
    es = data["early_stopping"]
    rows = []
    for e in data["evaluations"]:
        if not isinstance(e, dict) or "step" not in e:
            raise InvalidInput(f"--from-file {name}: every evaluation needs a \"step\" (got {e!r:.60})")
        rows.append({"train/global_step": e["step"], "eval/loss": e.get("eval_loss")})
    job: dict[str, Any] = {"id": data.get("job_id")}
    for key, source in (("status", "job_status"), ("total_steps", "total_steps"), ("n_evals", "n_evals")):
        if es.get(source) is not None:
            job[key] = es[source]
    server = (es.get("cross_check") or {}).get("server")
    if isinstance(server, dict):  # the server's verdict as it was when the file was written
        job["early_stopped"] = bool(server.get("fired"))
        if server.get("fired") and server.get("halt_step") is not None:
            job["steps_completed"] = server["halt_step"]
        if server.get("best_step") is not None:
            job["early_stopping_best_step"] = server["best_step"]
        job["early_stopping_best_metric"] = server.get("best_eval_loss")
    sent = None
    if es.get("enabled") is False:
        sent = {"early_stopping_enabled": False}
    elif es.get("settings_source") in ("recorded", "given"):
        sent = {"early_stopping_enabled": True, "early_stopping_patience": es.get("patience"),
                "early_stopping_min_delta": es.get("min_delta"), "early_stopping_warmup_evals": es.get("warmup_evals")}
    return SavedHistory(job, rows, sent)
