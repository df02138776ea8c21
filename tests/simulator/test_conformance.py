"""Issue 16 (item 8): every answer of ``ftctl sim serve`` validates against Together's own published
OpenAPI spec (``tests/fixtures/openapi/``, the fine-tuning and files cut), over a real server.

The spec's own faults are fixed in the copy validated against, each one named in ``SPEC_FAULTS``:
nothing else is excused. An operation is one line of ``OPERATIONS``; a request sent to it through
``Api.call`` is validated against that operation's response schema for the status it got (an
undocumented error status against the spec's error envelope, ``ErrorData``).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import httpx
import jsonschema
import pytest
import referencing
import yaml
from referencing.jsonschema import DRAFT202012

from served import TOKEN, served
from kit import TESTS

SPEC_FILE = TESTS / "fixtures" / "openapi" / "together-fine-tuning.yaml"
SPEC_URI = "urn:together-openapi"


# -- the spec, with its own faults named and fixed ----------------------------------------------------


def _schemas(spec: dict) -> dict:
    return spec["components"]["schemas"]


def _nullable_as_31(node: Any) -> None:
    """``nullable: true`` is OpenAPI 3.0; in this 3.1 document it means nothing, so a documented
    null (``random_seed``, the envelope's ``param`` and ``code``) would fail: say it the 3.1 way."""
    if isinstance(node, dict):
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        for value in node.values():
            _nullable_as_31(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_as_31(value)


def _train_on_inputs_auto(spec: dict) -> None:
    for schema in (_schemas(spec)["TrainingMethodSFT"]["properties"]["train_on_inputs"],
                   spec["paths"]["/fine-tunes"]["post"]["requestBody"]["content"]["application/json"]
                   ["schema"]["properties"]["train_on_inputs"]):
        schema.pop("type")  # a stray ``type: boolean`` beside ``oneOf: [boolean, "auto"]``


SPEC_FAULTS: list[tuple[str, Callable[[dict], None]]] = [
    # (the fault, as the spec's header or the contract docs name it; the fix applied to our copy)
    ("the job id is declared a uuid (real ids are ft-...)",
     lambda s: _schemas(s)["FinetuneResponse"]["properties"]["id"].pop("format")),
    ("train_on_inputs 'auto' cannot validate", _train_on_inputs_auto),
    ("'nullable' in a 3.1 document", _nullable_as_31),
    ("400/401/404 undocumented on most operations: an error answer is checked against ErrorData",
     lambda s: None),  # see ``response_schema``
    ("the event type enum predates early stopping: no 'early_stopped' (together-api.md §5.2)",
     lambda s: _schemas(s)["FinetuneEventType"]["enum"].append("early_stopped")),
    ("lr_scheduler_args is a oneOf of linear and cosine args, but every cosine args object is also a "
     "valid linear one (no required field or additionalProperties tells them apart): anyOf",
     lambda s: _schemas(s)["LRScheduler"]["properties"]["lr_scheduler_args"].update(
         anyOf=_schemas(s)["LRScheduler"]["properties"]["lr_scheduler_args"].pop("oneOf"))),
    ("a metric value is a number, but JSON has none for a diverged (NaN/infinite) loss: the simulator "
     "writes the strings 'NaN', 'Infinity', '-Infinity' as ftctl does (ftctl.wire.wire_float)",
     lambda s: s["paths"]["/fine-tunes/{id}/metrics"]["get"]["responses"]["200"]["content"]["application/json"]
     ["schema"]["properties"]["metrics"]["items"].update(additionalProperties={"anyOf": [
         {"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]})),
]


def load_spec() -> dict:
    spec = yaml.safe_load(SPEC_FILE.read_text())
    fixed = copy.deepcopy(spec)
    for _, fix in SPEC_FAULTS:
        fix(fixed)
    return fixed


SPEC = load_spec()
REGISTRY = referencing.Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(SPEC))

# The operations the simulator serves: (method, the spec's path) -> the simulator's path template.
# Adding an operation (files, say) is one line here plus the requests that exercise it.
OPERATIONS = {
    ("post", "/fine-tunes"): "/v1/fine-tunes",
    ("get", "/fine-tunes"): "/v1/fine-tunes",
    ("get", "/fine-tunes/{id}"): "/v1/fine-tunes/{id}",
    ("post", "/fine-tunes/{id}/cancel"): "/v1/fine-tunes/{id}/cancel",
    ("get", "/fine-tunes/{id}/events"): "/v1/fine-tunes/{id}/events",
    ("get", "/fine-tunes/{id}/checkpoints"): "/v1/fine-tunes/{id}/checkpoints",
    ("get", "/fine-tunes/{id}/metrics"): "/v1/fine-tunes/{id}/metrics",
    ("post", "/fine-tunes/estimate-price"): "/v1/fine-tunes/estimate-price",
    ("get", "/fine-tunes/models/limits"): "/v1/fine-tunes/models/limits",
    ("get", "/files"): "/v1/files",
    ("get", "/files/{id}"): "/v1/files/{id}",
    ("delete", "/files/{id}"): "/v1/files/{id}",
}


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def response_schema(method: str, path: str, status: int) -> dict:
    responses = SPEC["paths"][path][method]["responses"]
    documented = responses.get(str(status), {}).get("content", {}).get("application/json")
    if documented is None:
        if status < 400:
            raise AssertionError(f"{method.upper()} {path} does not document a {status} answer")
        return {"$ref": f"{SPEC_URI}#/components/schemas/ErrorData"}
    return {"$ref": f"{SPEC_URI}#/" + _pointer("paths", path, method, "responses", str(status), "content",
                                                "application/json", "schema")}


def validate(method: str, path: str, response: httpx.Response) -> Any:
    body = response.json()
    validator = jsonschema.Draft202012Validator(response_schema(method, path, response.status_code),
                                                registry=REGISTRY, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "\n".join(f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
                          for e in errors[:15])
        raise AssertionError(f"{method.upper()} {path} -> {response.status_code}: {len(errors)} "
                             f"violation(s) of the spec:\n{shown}")
    return body


class Api:
    """Requests to the served simulator; every answer is validated before it is returned."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        self.seen: dict[tuple[str, str], set[int]] = {}

    def call(self, method: str, path: str, *, id: str = "", headers: dict | None = None,
             **kwargs: Any) -> tuple[int, Any]:
        url = OPERATIONS[(method, path)].replace("{id}", id)
        response = self.client.request(method.upper(), url, headers=headers, **kwargs)
        self.seen.setdefault((method, path), set()).add(response.status_code)
        return response.status_code, validate(method, path, response)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    # 40 steps a second: a 120-step job runs for about 3 s, so polling sees it pending, running, done.
    with served(tmp_path_factory.mktemp("conformance"), speed="40") as server:
        client = Api(server.url)
        yield client
        client.client.close()


BASE = {"training_file": "file-train", "model": "Qwen/Qwen3.5-9B", "n_epochs": 5}
WITH_EVALS = {"validation_file": "file-val", "n_evals": 10}
CREATES = {
    "sft lora, defaults": dict(BASE),
    "sft lora, cli-shaped": {
        **BASE, **WITH_EVALS, "packing": True, "learning_rate": 1e-5, "warmup_ratio": 0.1,
        "lr_scheduler": {"lr_scheduler_type": "cosine", "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}},
        "max_grad_norm": 1.0, "weight_decay": 0.0, "n_checkpoints": 3, "batch_size": "max", "suffix": "conf",
        "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05,
                          "lora_trainable_modules": "all-linear"},
        "training_method": {"method": "sft", "train_on_inputs": "auto"}},
    "sft full, linear schedule": {
        **BASE, "training_type": {"type": "Full"}, "batch_size": 4,
        "lr_scheduler": {"lr_scheduler_type": "linear", "lr_scheduler_args": {"min_lr_ratio": 0.1}},
        "training_method": {"method": "sft", "train_on_inputs": False}},
    "dpo lora": {**BASE, "training_method": {"method": "dpo", "dpo_beta": 0.2, "rpo_alpha": 0.1,
                                             "dpo_normalize_logratios_by_length": True}},
    "dpo full, early stopping": {
        **BASE, **WITH_EVALS, "training_type": {"type": "Full"}, "training_method": {"method": "dpo"},
        "early_stopping_enabled": True, "early_stopping_patience": 2},
    "sft, early stopping halts": {**BASE, **WITH_EVALS, "early_stopping_enabled": True,
                                  "early_stopping_patience": 1, "random_seed": 7},
}
SCENARIOS = {"sft, early stopping halts": "plateau", "dpo full, early stopping": "nan"}
TERMINAL = {"completed", "error", "cancelled", "user_error"}


def test_every_spec_fault_is_named_once():
    names = [name for name, _ in SPEC_FAULTS]
    assert len(names) == len(set(names)) and all(names)


@pytest.fixture(scope="module")
def finished_jobs(api):
    """Every create variant (plus one that fails), followed to its end with every read validated at
    every instant polled: pending, running, uploading, done."""
    ids = {}
    for name, body in {**CREATES, "sft, job fails": dict(BASE)}.items():
        scenario = "error" if name == "sft, job fails" else SCENARIOS.get(name)
        status, job = api.call("post", "/fine-tunes", json=body,
                               headers={"X-Ftctl-Sim-Scenario": scenario} if scenario else None)
        assert status == 200, job
        ids[name] = job["id"]
    statuses: dict[str, set[str]] = {name: set() for name in ids}
    pending = dict(ids)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for name, job_id in list(pending.items()):
            _, job = api.call("get", "/fine-tunes/{id}", id=job_id)
            api.call("get", "/fine-tunes/{id}/events", id=job_id)
            api.call("get", "/fine-tunes/{id}/checkpoints", id=job_id)
            api.call("get", "/fine-tunes/{id}/metrics", id=job_id)
            statuses[name].add(job["status"])
            if job["status"] in TERMINAL:
                del pending[name]
        api.call("get", "/fine-tunes")
        time.sleep(0.05)
    assert not pending, f"jobs that did not end: {pending}"
    return ids, statuses


def test_create_retrieve_list_events_checkpoints_metrics_validate_at_every_instant(api, finished_jobs):
    ids, statuses = finished_jobs
    assert statuses["sft, job fails"] >= {"running", "error"}
    assert any("running" in s for s in statuses.values())  # really read mid-run, not only at the end
    for name, job_id in ids.items():
        _, job = api.call("get", "/fine-tunes/{id}", id=job_id)
        _, events = api.call("get", "/fine-tunes/{id}/events", id=job_id)
        assert events["data"] and events["data"] == job["events"], name
        _, metrics = api.call("get", "/fine-tunes/{id}/metrics", id=job_id, params={"resolution": 5})
        assert metrics["metrics"], name
    _, listed = api.call("get", "/fine-tunes")
    assert set(ids.values()) <= {j["id"] for j in listed["data"]}


def test_the_events_carry_true_values(api, finished_jobs):
    ids, _ = finished_jobs
    _, job = api.call("get", "/fine-tunes/{id}", id=ids["sft lora, cli-shaped"])
    by_type = {}
    for event in job["events"]:
        by_type.setdefault(event["type"], []).append(event)
    assert all(e["total_steps"] == job["total_steps"] for e in job["events"])
    assert by_type["job_pending"][0]["step"] == 0 and by_type["job_pending"][0]["token_count"] == 0
    done = by_type["training_complete"][0]
    assert (done["step"], done["token_count"]) == (job["total_steps"], job["token_count"])
    _, checkpoints = api.call("get", "/fine-tunes/{id}/checkpoints", id=job["id"])
    saved = {c["path"] for c in checkpoints["data"]}
    assert {e["checkpoint_path"] for e in by_type["checkpoint_save"]} <= saved
    assert all(e["hash"] for e in by_type["checkpoint_save"])
    assert by_type["model_upload_complete"][0]["model_path"].endswith("/final")
    assert by_type["model_upload_complete"][0]["param_count"] == 9_000_000_000  # Qwen3.5-9B


def test_lr_scheduler_and_training_method_are_the_spec_objects(api, finished_jobs):
    ids, _ = finished_jobs
    _, default = api.call("get", "/fine-tunes/{id}", id=ids["sft lora, defaults"])
    assert default["lr_scheduler"] == {"lr_scheduler_type": "cosine",
                                       "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}}
    assert default["training_method"] == {"method": "sft", "train_on_inputs": "auto"}
    _, dpo = api.call("get", "/fine-tunes/{id}", id=ids["dpo lora"])
    assert dpo["training_method"]["method"] == "dpo" and dpo["training_method"]["dpo_beta"] == 0.2


def test_cancel_validates(api):
    _, job = api.call("post", "/fine-tunes", json=dict(BASE))
    status, cancelled = api.call("post", "/fine-tunes/{id}/cancel", id=job["id"])
    assert status == 200 and cancelled["status"] in ("cancel_requested", "cancelled")
    deadline = time.monotonic() + 30
    while api.call("get", "/fine-tunes/{id}", id=job["id"])[1]["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    _, events = api.call("get", "/fine-tunes/{id}/events", id=job["id"])
    assert events["data"][-1]["type"] == "job_stopped"
    status, again = api.call("post", "/fine-tunes/{id}/cancel", id=job["id"])  # idempotent
    assert status == 200 and again["status"] == "cancelled"


def test_estimate_price_and_model_limits_validate(api):
    status, estimate = api.call("post", "/fine-tunes/estimate-price",
                                json={"training_file": "file-train", "model": "Qwen/Qwen3.5-9B", "n_epochs": 2})
    assert status == 200 and estimate["estimated_total_price"] > 0
    status, limits = api.call("get", "/fine-tunes/models/limits", params={"model_name": "Qwen/Qwen3.5-9B"})
    assert status == 200 and limits["model_name"] == "Qwen/Qwen3.5-9B"


@pytest.mark.parametrize("method, path, kwargs, expected", [
    ("get", "/fine-tunes/{id}", {"id": "ft-nope"}, 404),
    ("get", "/fine-tunes/{id}/events", {"id": "ft-nope"}, 404),
    ("get", "/fine-tunes/{id}/checkpoints", {"id": "ft-nope"}, 404),
    ("get", "/fine-tunes/{id}/metrics", {"id": "ft-nope"}, 404),
    ("post", "/fine-tunes/{id}/cancel", {"id": "ft-nope"}, 404),
    ("get", "/fine-tunes/{id}/metrics", {"id": "ft-nope", "params": {"resolution": "x"}}, 400),
    ("post", "/fine-tunes", {"json": {"model": "m"}}, 400),
    ("post", "/fine-tunes", {"content": b"{not json"}, 400),
    ("post", "/fine-tunes", {"json": [1, 2]}, 400),
    ("post", "/fine-tunes", {"json": {**BASE, "n_epochs": "5"}}, 400),
    ("post", "/fine-tunes/estimate-price", {"json": {}}, 400),
    ("get", "/fine-tunes/models/limits", {}, 400),
    ("get", "/fine-tunes", {"headers": {"Authorization": "Basic x"}}, 401),
])
def test_errors_answer_with_the_spec_envelope(api, method, path, kwargs, expected):
    status, body = api.call(method, path, **kwargs)
    assert status == expected and body["error"]["message"]


def test_unrouted_and_wrong_method_answer_with_the_envelope(api):
    for method, url, expected in (("GET", "/v1/nope", 404), ("DELETE", "/v1/fine-tunes", 405),
                                  ("PUT", "/v1/fine-tunes/ft-x/events", 405)):
        response = api.client.request(method, url)
        assert response.status_code == expected
        jsonschema.validate(response.json(), {"$ref": f"{SPEC_URI}#/components/schemas/ErrorData"},
                            registry=REGISTRY)  # type: ignore[call-arg]
        if expected == 405:
            assert response.headers["allow"], "a 405 names the methods allowed (RFC 9110 §15.5.6)"


def test_files_list_retrieve_and_delete_validate(api, ftctl, tmp_path):
    """The sample files and one uploaded through the vendor's exchange (POST, 302, PUT,
    preprocess: ftctl's httpx backend against the server), read and deleted, every answer checked."""
    status, listed = api.call("get", "/files")
    assert status == 200 and {"file-train", "file-val"} <= {f["id"] for f in listed["data"]}
    status, sample = api.call("get", "/files/{id}", id="file-train")
    assert status == 200 and sample["id"] == "file-train"
    data = tmp_path / "tiny.jsonl"
    data.write_text("\n".join('{"messages": [{"role": "user", "content": "Hi %d"}, '
                               '{"role": "assistant", "content": "Hello %d"}]}' % (i, i) for i in range(8)) + "\n")
    uploaded = ftctl("files", "upload", data, "-q", "--backend", "together", "--base-url", str(api.client.base_url),
                     env={"TOGETHER_API_KEY": TOKEN})
    assert uploaded.exit_code == 0, uploaded.stderr
    file_id = uploaded.stdout.strip()
    status, file = api.call("get", "/files/{id}", id=file_id)
    assert status == 200 and file["id"] == file_id
    status, deleted = api.call("delete", "/files/{id}", id=file_id)
    assert status == 200 and deleted["id"] == file_id and deleted["deleted"] is True
    status, error = api.call("get", "/files/{id}", id=file_id)
    assert status == 404 and error["error"]["message"]


def test_every_served_operation_was_exercised(api, finished_jobs):
    assert set(api.seen) == set(OPERATIONS)
    assert all(200 in codes for codes in api.seen.values())
