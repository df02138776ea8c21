"""Issue 7: malformed server responses. A response of a known shape with values ftctl has never
seen (a new status, a new event type, a missing optional field, an extra field) must work and
render, on a terminal and off one; garbage (wrong types, truncated JSON, HTML, an empty body) must
be one clear line and exit 1, never a traceback or an "internal error".

Two sources: hypothesis generates responses and bodies (run ``pytest --hypothesis-show-statistics``
for the number of examples tried), served through ftctl's real httpx backend on a mock transport;
and the served simulator's fault injection, for every command that reads a response, over a real
socket.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from typing import Any, Iterator
from unittest import mock

import httpx
import pytest
import typer.main
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import ftctl.backends
import ftctl.follow as follow
from ftctl.__main__ import run
from ftctl.environment import Clock, Environment
from ftctl.models import Checkpoint, Event, Job, MetricsRow, ResponseError, check_list, parse, unwrap_list
from ftctl.backends.together import HttpSettings, TogetherBackend, server_message

from served import on_the_api

KEY = "tgk-malformed-responses-key"
JOB_ID = "ft-11111111-2222-3333-4444-555555555555"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])

# A job as the API sends it once it has early-stopped (docs/api.md §4), and its history.
JOB = {"id": JOB_ID, "status": "completed", "user_id": "u", "created_at": "2026-06-01T10:00:00.000Z",
       "updated_at": "2026-06-01T10:30:00.000Z", "model": "Qwen/Qwen3.5-9B", "model_output_name": "u/q",
       "training_file": "file-t", "validation_file": "file-v", "n_epochs": 5, "n_evals": 10, "n_checkpoints": 1,
       "batch_size": 8, "learning_rate": 1e-05, "total_steps": 120, "steps_completed": 72, "evals_completed": 6,
       "epochs_completed": 3, "eval_steps": 12, "early_stopped": True, "early_stopping_best_step": 48,
       "early_stopping_best_metric": 0.4213, "total_price": 144000000,
       "training_method": {"method": "sft", "train_on_inputs": "auto"}}
EVENTS = [{"object": "fine-tune-event", "created_at": "2026-06-01T10:00:00.000Z", "type": "job_pending",
           "level": "info", "message": "Fine tune request created"},
          {"object": "fine-tune-event", "created_at": "2026-06-01T10:20:00.000Z", "type": "early_stopped",
           "level": "info", "message": "Early stopping triggered", "step": 72, "early_stopping_best_step": 48,
           "early_stopping_best_metric_value": 0.4213},
          {"object": "fine-tune-event", "created_at": "2026-06-01T10:20:01.000Z", "type": "refund",
           "level": "info", "message": "Refunded 48 unused steps of 120"}]
CHECKPOINTS = [{"step": 48, "path": "s3://b/final", "created_at": "2026-06-01T10:29:00.000Z",
                "checkpoint_type": "Final"},
               {"step": 24, "path": "s3://b/24", "created_at": "2026-06-01T10:10:00.000Z",
                "checkpoint_type": "Intermediate"}]
LOSSES = [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47]
METRICS = [{"train/global_step": 12 * (i + 1), "eval/loss": v, "timestamp": 1.7e9 + i} for i, v in enumerate(LOSSES)]

# What ftctl reads: every command that shows a response, plain (piped) and on a terminal.
READERS = [("retrieve", JOB_ID), ("list",), ("events", JOB_ID), ("checkpoints", JOB_ID), ("metrics", JOB_ID),
           ("explain", JOB_ID), ("cancel", JOB_ID, "--yes")]


# -- running ftctl against answers we choose ---------------------------------------------------------


class Api:
    """What the mock API answers: per path suffix, a JSON value or raw bytes (status 200)."""

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        self.status = 200

    def set(self, *, job=JOB, jobs=None, events=EVENTS, checkpoints=CHECKPOINTS, metrics=METRICS) -> None:
        self.answers = {"/cancel": job, "/events": {"data": events}, "/checkpoints": {"data": checkpoints},
                        "/metrics": {"metrics": metrics}, f"/{JOB_ID}": job,
                        "/fine-tunes": {"data": [job] if jobs is None else jobs}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        for suffix, answer in self.answers.items():
            if request.url.path.endswith(suffix):
                if isinstance(answer, bytes):
                    return httpx.Response(self.status, content=answer)
                return httpx.Response(self.status, content=json.dumps(answer).encode(),
                                      headers={"content-type": "application/json"})
        return httpx.Response(404, json={"error": {"message": "no such thing"}})


@pytest.fixture
def api(monkeypatch) -> Api:
    """ftctl's real httpx backend, its transport answering from ``Api`` (no retries, no sleeps)."""
    mock = Api()
    mock.set()

    def open_backend(config, *, trace=None, scenario=None, clock=None):
        return TogetherBackend(config, transport=httpx.MockTransport(mock.handle), trace=trace,
                               settings=HttpSettings(max_retries=0, retry_delay=0), sleep=lambda s: None)

    monkeypatch.setattr(ftctl.backends, "open_backend", open_backend)
    # Build the command tree once, not once per run: the fuzzers run ftctl hundreds of times.
    monkeypatch.setattr(typer.main, "get_command", functools.cache(typer.main.get_command))
    return mock


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, unset) environment variables; all are restored afterwards."""
    with mock.patch.dict(os.environ):
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield


NO_SLEEP = Environment(Clock(sleep=lambda seconds: None))


def ftctl_api(*argv: str, tty: bool = False) -> tuple[int, str, str]:
    """ftctl in this process, on the together backend, stdout piped or (``tty``) a terminal."""
    out, err = io.StringIO(), io.StringIO()
    with environment(TOGETHER_API_KEY=KEY, FTCTL_FORCE_TTY="100" if tty else None, NO_COLOR="1"), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(argv), NO_SLEEP)  # wait's pauses between polls take no time
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code: int, err: str) -> None:
    """Exit 1 and one line that says what was wrong with the response; never a crash."""
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    assert KEY not in err


def assert_reads_everywhere(tty_too: bool = True) -> None:
    """Every reader succeeds on what the API sent, piped and on a terminal, with --json unchanged."""
    for argv in READERS:
        for tty in (False, True) if tty_too else (False,):
            code, out, err = ftctl_api(*argv, tty=tty)
            assert code == 0, (argv, tty, err)
            assert "Traceback" not in err and "internal error" not in err
            # cancel on a job that has already ended (or is being cancelled) answers in one line on stderr
            assert out or (argv[0] == "cancel" and f"{JOB_ID} " in err), (argv, tty)


# -- known shape, unknown values: must work and render ------------------------------------------------


@pytest.mark.parametrize("status", ["model_downloading", "QUEUED_FOR_GPU", "paused", "", "cancel_requested"])
def test_an_unknown_status_is_shown_as_it_is(api, status):
    job = {**JOB, "status": status, "early_stopped": False}
    api.set(job=job)
    assert_reads_everywhere()
    code, out, _ = ftctl_api("retrieve", JOB_ID, "--json")
    assert json.loads(out) == job  # unchanged, as the API sent it
    code, out, _ = ftctl_api("retrieve", JOB_ID)
    assert f"status\t{status}\n" in out


def test_a_job_with_only_its_id_and_status_renders(api):
    bare = {"id": JOB_ID, "status": "running"}
    api.set(job=bare, events=[{}], checkpoints=[{"step": 3}], metrics=[])
    assert_reads_everywhere()
    assert json.loads(ftctl_api("list", "--json")[1]) == [bare]


def test_unknown_event_types_levels_and_extra_fields_pass_through(api):
    events = [{"type": "gpu_swap", "level": "NOTICE", "message": "moved to another node", "node": {"id": 3}},
              {"type": "EARLY_STOPPED", "step": 72, "message": "[bold]not markup[/bold]"},
              {"message": None, "created_at": None, "type": None, "step": None}]
    api.set(events=events, job={**JOB, "brand_new": {"nested": [1, 2]}, "queue_position": 4})
    assert_reads_everywhere()
    code, out, _ = ftctl_api("events", JOB_ID, "--json")
    assert json.loads(out) == events
    code, out, _ = ftctl_api("events", JOB_ID, tty=True)
    assert "gpu_swap" in out and "[bold]not markup[/bold]" in out


def test_metrics_rows_with_nulls_strings_extra_keys_and_no_step(api):
    metrics = [{"train/global_step": 12, "eval/loss": 2.0}, {"train/global_step": 24, "eval/loss": None},
               {"eval/loss": "NaN"}, {"train/loss": 1.3, "train/global_step": 30, "gpu/util": "97%"},
               {"train/global_step": 48, "eval/loss": "Infinity", "eval/accuracy": 0.7}]
    api.set(metrics=metrics, job={**JOB, "status": "running", "early_stopped": None})
    assert_reads_everywhere()
    data = json.loads(ftctl_api("metrics", JOB_ID, "--json")[1])
    assert [e["eval_loss"] for e in data["evaluations"]][:2] == [2.0, "NaN"]  # null reads as non-finite
    assert data["missing_eval_loss_steps"] == [24]


def test_known_shape_with_numbers_as_strings_still_renders(api):
    job = {**JOB, "total_steps": "120", "steps_completed": 72.0, "evals_completed": "6",
           "progress": {"seconds_remaining": "soon"}, "status": "running"}
    api.set(job=job)
    assert_reads_everywhere()


def test_wait_keeps_waiting_through_a_status_it_does_not_know(api):
    seen = iter(["model_downloading", "running", "QUEUED_FOR_EVAL", "completed"])
    original = api.handle

    def handle(request):
        if request.url.path.endswith(JOB_ID):
            api.answers[f"/{JOB_ID}"] = {**JOB, "status": next(seen, "completed")}
        return original(request)

    api.handle = handle
    code, out, err = ftctl_api("wait", JOB_ID, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"
    assert next(seen, None) is None  # it polled through every status, including the unknown ones


# -- garbage: one clear line, exit 1 ---------------------------------------------------------------------


@pytest.mark.parametrize("command", READERS, ids=[r[0] for r in READERS])
@pytest.mark.parametrize("body, says", [
    (b"", "the API sent an empty response"),
    (b'{"id": "ft-1", "status": "running", "total', "is not valid JSON"),
    (b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>",
     "an HTML page ('502 Bad Gateway'), not JSON"),
    (b"\xff\xfe\x00\x01", "is not valid JSON"),
    (b"[[[[[[[[" * 20_000, "is not valid JSON"),
    (b'"just a string"', "unexpected response"),
    (b"null", "unexpected response"),
    (b'{"data": "not a list", "metrics": 7, "id": null, "status": 3}', "unexpected response"),
], ids=["empty", "truncated", "html", "binary", "deep", "string", "null", "wrong-types"])
def test_garbage_is_one_clear_line_and_exit_1(api, command, body, says):
    for suffix in api.answers:
        api.answers[suffix] = body
    code, out, err = ftctl_api(*command)
    assert_clean_failure(code, err)
    assert says in err and out == ""


@pytest.mark.parametrize("field, value", [
    ("status", 3), ("status", None), ("id", None), ("total_steps", "many"), ("early_stopped", "perhaps"),
    ("early_stopping_best_step", [48]), ("steps_completed", {"n": 72}), ("events", "none"),
])
def test_a_wrong_type_in_a_job_names_the_field(api, field, value):
    api.set(job={**JOB, field: value})
    for argv in (("retrieve", JOB_ID), ("list",), ("metrics", JOB_ID)):
        code, out, err = ftctl_api(*argv)
        assert_clean_failure(code, err)
        assert f"field '{field}" in err and out == ""
    # wait takes a bad answer for a passing hiccup: it polls again, then gives up with the same line
    code, out, err = ftctl_api("wait", JOB_ID)
    *retries, last = err.splitlines()
    assert code == 1 and last.startswith("Error: unexpected response") and f"field '{field}" in last
    assert len(retries) == follow.POLL_RETRIES and all("poll failed (unexpected response" in r for r in retries)


# -- fuzzing ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=5)
statuses = st.sampled_from(["pending", "queued", "running", "compressing", "uploading", "cancel_requested",
                            "cancelled", "error", "user_error", "completed"]) | st.text(max_size=15)


@st.composite
def perturbed(draw, base: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """``base`` with optional fields dropped, values replaced by any JSON, and extra fields added."""
    free = sorted(set(base) - set(keep))
    dropped = draw(st.sets(st.sampled_from(free), max_size=3))
    replaced = draw(st.dictionaries(st.sampled_from(free), json_values, max_size=2))
    extra = draw(st.dictionaries(st.sampled_from(["queue_position", "x_new", "Status", "", "data"]), json_values,
                                 max_size=2))
    return {**extra, **{k: v for k, v in base.items() if k not in dropped}, **replaced}


EVENT = st.one_of([perturbed(e) for e in EVENTS])
CHECKPOINT = st.one_of([perturbed(c) for c in CHECKPOINTS])
METRICS_ROW = st.one_of([perturbed(m) for m in METRICS])
JOBS = st.builds(lambda job, status: {**job, "status": status}, perturbed(JOB, keep=("id", "status")), statuses)
api_answers = st.fixed_dictionaries({"job": JOBS, "events": st.lists(EVENT, max_size=3),
                                     "checkpoints": st.lists(CHECKPOINT, max_size=2),
                                     "metrics": st.lists(METRICS_ROW, max_size=6)})


def _strict(text: str) -> Any:
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON token {name}"))


@FUZZ
@given(answers=api_answers, command=st.sampled_from([*READERS, ("retrieve", JOB_ID, "--json")]), tty=st.booleans())
def test_fuzzed_responses_render_or_fail_in_one_line(api, answers, command, tty):
    """Whatever the API answers, a command either shows it (``--json`` unchanged, strict) or names
    the field that is wrong, in one line, exit 1."""
    api.set(**answers)
    code, out, err = ftctl_api(*command, tty=tty)
    event(f"exit {code}")  # both kinds of ending are exercised: see --hypothesis-show-statistics
    if code != 0:
        assert_clean_failure(code, err)
        assert "unexpected response" in err, err
        return
    assert "Traceback" not in err and "internal error" not in err
    if "--json" in command:
        assert _strict(out) == json.loads(json.dumps(answers["job"]), parse_constant=_as_contract_string)


def _as_contract_string(name: str) -> str:
    return {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity"}[name]


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
       | st.builds(lambda doc, cut: json.dumps(doc)[:cut].encode(),
                   st.fixed_dictionaries({"data": st.just([JOB]), "id": st.just(JOB_ID)}), st.integers(0, 2000)),
       command=st.sampled_from(READERS))
def test_fuzzed_bodies_are_read_or_refused_in_one_line(api, body, command):
    for suffix in api.answers:
        api.answers[suffix] = body
    code, out, err = ftctl_api(*command)
    if code != 0:
        assert_clean_failure(code, err)


@FUZZ
@given(status=st.sampled_from([400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
       body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())
       | st.builds(lambda m, t: json.dumps({"error": {"message": m, "type": t}}).encode(),
                   st.text(max_size=400), json_values))
def test_fuzzed_error_bodies_become_one_line_and_the_contracts_exit_code(api, status, body):
    api.status = status
    for suffix in api.answers:
        api.answers[suffix] = body
    code, out, err = ftctl_api("retrieve", JOB_ID)
    expected = {401: 4, 403: 4, 404: 6}.get(status, 1)
    assert code == expected, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[-1].startswith("Error: "), err  # a hint may follow on auth errors
    assert "internal error" not in err and "Traceback" not in err
    message = server_message(httpx.Response(status, content=body))
    assert "\n" not in message and len(message) <= 300


@settings(max_examples=300, deadline=None)
@given(data=json_values, model=st.sampled_from([Job, Event, Checkpoint, MetricsRow]))
def test_parsing_any_json_returns_a_model_or_raises_one_clear_line(data, model):
    """The models at the HTTP boundary: any JSON value is a model or a ``ResponseError``; the wire
    object is never changed."""
    before = json.dumps(data, sort_keys=True)
    for call in (lambda: parse(model, data, "x"), lambda: check_list(model, data, "data", "x"),
                 lambda: unwrap_list(data, "data", "x")):
        try:
            call()
        except ResponseError as exc:
            assert "\n" not in exc.message and exc.message.startswith("unexpected response for x")
            assert exc.exit_code == 1
    assert json.dumps(data, sort_keys=True) == before


@settings(max_examples=200, deadline=None)
@given(dropped=st.sets(st.sampled_from(sorted(set(JOB) - {"id", "status"}))),
       extra=st.dictionaries(st.text(min_size=1, max_size=10).filter(lambda k: k not in Job.model_fields),
                             json_values, max_size=4))
def test_dropping_optional_fields_or_adding_unknown_ones_never_breaks_a_job(dropped, extra):
    job = {**{k: v for k, v in JOB.items() if k not in dropped}, **extra}
    parsed = parse(Job, job, "x")
    assert parsed.id == JOB_ID and parsed.status == "completed"
    assert parsed.model_extra == extra  # kept, not dropped


# -- the served simulator's faults, for every reader ------------------------------------------------------


@pytest.fixture
def served_job(ftctl, srv) -> str:
    made = on_the_api(ftctl, srv.url, KEY)(*"create -t file-train -v file-val -m Qwen/Qwen3.5-9B --n-evals 10 --early-stopping -q".split())
    assert made.exit_code == 0, made.stderr
    return made.stdout.strip()


SERVED = [("retrieve", "{id}"), ("events", "{id}"), ("checkpoints", "{id}"), ("metrics", "{id}"),
          ("explain", "{id}"), ("cancel", "{id}", "--yes"), ("list",)]


@pytest.mark.parametrize("fault", ["malformed", "truncated", "empty", "html"])
@pytest.mark.parametrize("command", SERVED, ids=[c[0] for c in SERVED])
def test_served_faults_on_every_reader_exit_1_in_one_line(ftctl, srv, served_job, command, fault):
    srv.inject(kind=fault, count=3)  # enough to outlast the retries of an HTML 502
    argv = [a.replace("{id}", served_job) for a in command]
    result = on_the_api(ftctl, srv.url, KEY, FTCTL_RETRY_DELAY="0")(*argv)
    assert_clean_failure(result.exit_code, result.stderr)
    assert result.stdout == ""
