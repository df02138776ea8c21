"""Issue 4: the httpx backend's policy, where a real server cannot easily be made to misbehave:
the retry schedule and its headers, URL handling, error bodies, leniency, what is sent."""

from __future__ import annotations

import email.utils
import json
import random
import time
from pathlib import Path

import httpx
import pytest

from ftctl.wire import MetricsQuery
from ftctl.config import Config
from ftctl.errors import ApiError, AuthError, ExitCode, FtctlError, InvalidInput, NotFound
from ftctl.models import ResponseError
from ftctl.backends.together import HttpSettings, TogetherBackend, api_root, retry_after

KEY = "tgk-unit-test-key"
JOB = {"id": "ft-1", "status": "running", "user_id": "u"}


def backend(handler, *, base_url: str = "https://api.together.ai", key: str | None = KEY, sleeps=None,
            trace=None, **settings) -> TogetherBackend:
    config = Config("together", False, base_url, Path("/nonexistent"), 1.0, api_key=key)
    return TogetherBackend(config, transport=httpx.MockTransport(handler), trace=trace,
                           settings=HttpSettings(**settings),
                           sleep=(sleeps.append if sleeps is not None else lambda s: None))


def answers(*responses):
    """A handler that gives these responses in turn and records the requests."""
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    handle.seen = seen
    return handle


# -- what is sent -----------------------------------------------------------------------------------


@pytest.mark.parametrize("base_url, expected", [
    ("https://api.together.ai", "https://api.together.ai/v1/fine-tunes/ft-1"),
    ("https://api.together.xyz/v1/", "https://api.together.xyz/v1/fine-tunes/ft-1"),  # the old SDK's form
    ("https://proxy.example/together", "https://proxy.example/together/v1/fine-tunes/ft-1"),
])
def test_the_base_url_is_the_host_root_and_v1_is_appended_once(base_url, expected):
    handler = answers(httpx.Response(200, json=JOB))
    backend(handler, base_url=base_url).retrieve("ft-1")
    assert str(handler.seen[0].url) == expected


def test_requests_carry_the_bearer_key_and_create_sends_the_body_unchanged():
    handler = answers(httpx.Response(200, json=JOB))
    body = {"training_file": "f", "model": "m", "n_evals": 4, "early_stopping_enabled": True,
            "training_method": {"method": "sft", "train_on_inputs": "auto"}}
    backend(handler).create(body)
    request = handler.seen[0]
    assert (request.method, request.url.path) == ("POST", "/v1/fine-tunes")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == body


def test_metrics_filters_go_in_the_query_string():
    handler = answers(httpx.Response(200, json={"metrics": []}))
    backend(handler).metrics("ft-1", MetricsQuery(global_step_from=10, logged_at_to="2026-01-01T00:00:00Z",
                                                  resolution=50))
    assert dict(handler.seen[0].url.params) == {"global_step_from": "10",
                                                "logged_at_to": "2026-01-01T00:00:00Z", "resolution": "50"}


# -- what comes back --------------------------------------------------------------------------------


def test_unknown_statuses_event_types_and_fields_pass_through_unchanged():
    job = {**JOB, "status": "model_downloading", "brand_new_field": {"x": 1}}
    events = {"data": [{"object": "fine-tune-event", "created_at": "t", "message": "m", "type": "SOMETHING_NEW",
                        "level": "Legacy_Info", "extra": 1}]}
    handler = answers(httpx.Response(200, json=job), httpx.Response(200, json=events))
    b = backend(handler)
    assert b.retrieve("ft-1") == job
    assert b.events("ft-1") == events["data"]


def test_non_finite_metrics_are_accepted_as_bare_tokens_strings_and_null():
    text = ('{"metrics": [{"train/global_step": 1, "eval/loss": NaN}, {"train/global_step": 2, "eval/loss": "Infinity"},'
            ' {"train/global_step": 3, "eval/loss": null}, {"train/global_step": 4, "eval/loss": "-Infinity"}]}')
    rows = backend(answers(httpx.Response(200, text=text))).metrics("ft-1")
    assert [r["train/global_step"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["eval/loss"] != rows[0]["eval/loss"] and rows[1]["eval/loss"] == "Infinity"


@pytest.mark.parametrize("call, payload, message", [
    ("retrieve", {"status": "running"}, "unexpected response for job ft-1: field 'id' field required"),
    ("retrieve", [JOB], "unexpected response for job ft-1: expected a JSON object, got a list"),
    ("list", {"jobs": []}, "unexpected response for the job list: expected an object with a 'data' list"),
    ("events", {"data": [{"type": "x", "step": "many"}]}, "unexpected response for the events of ft-1: field 'step'"),
    ("metrics", {"metrics": [{"eval/loss": "high"}]}, "unexpected response for the metrics of ft-1: field 'eval/loss'"),
])
def test_a_response_of_the_wrong_shape_is_one_clear_line(call, payload, message):
    b = backend(answers(httpx.Response(200, json=payload)))
    with pytest.raises(ResponseError) as raised:
        getattr(b, call)(*(() if call == "list" else ("ft-1",)))
    assert raised.value.message.startswith(message) and raised.value.exit_code == ExitCode.ERROR


@pytest.mark.parametrize("status, body, error, message", [
    (404, {"error": {"message": "Fine-tune job not found", "type": "invalid_request_error", "param": None,
                     "code": None}}, NotFound, "Fine-tune job not found (HTTP 404 from GET /v1/fine-tunes/ft-1)"),
    (403, {"message": "project is suspended", "code": 7, "details": [{"detail": "billing"}]}, AuthError,
     "the API rejected the key: project is suspended: billing (HTTP 403 from GET /v1/fine-tunes/ft-1)"),
    (400, {"error": "bad thing"}, ApiError, "bad thing (HTTP 400 from GET /v1/fine-tunes/ft-1)"),
    (422, "plain words", ApiError, "Unprocessable Entity; the body was starting 'plain words' "
                                   "(HTTP 422 from GET /v1/fine-tunes/ft-1)"),
])
def test_error_bodies_become_the_servers_message_and_the_contracts_exit_code(status, body, error, message):
    response = httpx.Response(status, **({"json": body} if isinstance(body, dict) else {"text": body}))
    with pytest.raises(error) as raised:
        backend(answers(response)).retrieve("ft-1")
    assert raised.value.message == message


# -- retries --------------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped():
    random.seed(4)
    sleeps: list[float] = []
    handler = answers(httpx.Response(500, json={"error": {"message": "down"}}))
    with pytest.raises(ApiError, match=r"down \(HTTP 500 from GET /v1/fine-tunes, after 6 attempts\)"):
        backend(handler, sleeps=sleeps, max_retries=5, retry_delay=1.0).list()
    assert len(handler.seen) == 6
    for n, slept in enumerate(sleeps):
        full = min(2.0 ** n, 10.0)
        assert 0.75 * full <= slept <= full


@pytest.mark.parametrize("headers, expected", [
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after-ms": "100", "retry-after": "5"}, 0.1),  # the precise one wins
    ({"retry-after": "61"}, None),  # out of range: back off instead
    ({"retry-after": "soon"}, None),
    ({"retry-after": "-1"}, None),
])
def test_retry_after_headers(headers, expected):
    assert retry_after(httpx.Headers(headers)) == expected


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3 <= retry_after(httpx.Headers({"retry-after": when})) <= 5


@pytest.mark.parametrize("status, should_retry, attempts", [
    (500, "false", 1), (400, "true", 3), (408, None, 3), (409, None, 3), (429, None, 3), (400, None, 1),
    (404, None, 1),
])
def test_which_answers_are_retried(status, should_retry, attempts):
    headers = {"x-should-retry": should_retry} if should_retry else {}
    handler = answers(httpx.Response(status, headers=headers, json={"error": {"message": "no"}}))
    with pytest.raises(FtctlError):
        backend(handler).list()
    assert len(handler.seen) == attempts


def test_connection_errors_are_retried_then_succeed():
    handler = answers(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.Response(200, json={"data": []}))
    sleeps: list[float] = []
    assert backend(handler, sleeps=sleeps).list() == []
    assert len(handler.seen) == 3 and len(sleeps) == 2


def test_create_is_retried_when_nothing_was_sent_but_not_after_a_read_timeout():
    handler = answers(httpx.ConnectError("refused"), httpx.Response(200, json=JOB))
    assert backend(handler).create({"training_file": "f", "model": "m"})["id"] == "ft-1"
    handler = answers(httpx.ReadTimeout("slow"), httpx.Response(200, json=JOB))
    with pytest.raises(ApiError, match="the job may have been created"):
        backend(handler).create({"training_file": "f", "model": "m"})
    assert len(handler.seen) == 1


# -- the key ----------------------------------------------------------------------------------------


def test_the_trace_masks_the_key_and_body_secrets_and_scrubs_echoes():
    lines: list[str] = []
    handler = answers(httpx.Response(500, json={"error": {"message": f"bad key {KEY}"}}))
    with pytest.raises(ApiError) as raised:
        backend(handler, trace=lines.append, max_retries=0).create(
            {"training_file": "f", "model": "m", "wandb_key": "wandb-secret"})
    assert KEY not in raised.value.message and "bad key ****" in raised.value.message
    text = "\n".join(lines)
    assert "> Authorization: Bearer ****" in text and '"wandb_key":"****"' in text
    assert KEY not in text and "wandb-secret" not in text


@pytest.mark.parametrize("key, message", [
    (None, "TOGETHER_API_KEY is not set"),
    ("  ", "TOGETHER_API_KEY is not set"),
    ("abc def-secret", "TOGETHER_API_KEY contains spaces, control or non-ASCII characters"),
])
def test_a_missing_or_unusable_key_is_an_auth_error_that_never_shows_it(key, message):
    with pytest.raises(AuthError) as raised:
        backend(answers(httpx.Response(200, json=JOB)), key=key)
    assert raised.value.message.startswith(message) and "secret" not in raised.value.message


@pytest.mark.parametrize("base_url, allowed", [
    ("http://localhost:8765", True), ("http://127.0.0.5", True), ("http://[::1]:80", True),
    ("https://api.together.ai", True), ("http://api.together.ai", False), ("http://10.0.0.2:8765", False),
])
def test_plain_http_is_refused_off_this_machine(base_url, allowed):
    if allowed:
        backend(answers(httpx.Response(200, json=JOB)), base_url=base_url)
    else:
        with pytest.raises(InvalidInput, match="refusing to send TOGETHER_API_KEY over plain http"):
            backend(answers(httpx.Response(200, json=JOB)), base_url=base_url)
        backend(answers(httpx.Response(200, json=JOB)), base_url=base_url, allow_insecure_http=True)


@pytest.mark.parametrize("url", ["api.together.ai", "ftp://x", "https://", "https://h/?q=1"])
def test_a_bad_base_url_is_invalid_input(url):
    with pytest.raises(InvalidInput, match="--base-url / TOGETHER_BASE_URL must"):
        api_root(url)


def test_settings_from_the_environment():
    settings = HttpSettings.from_env({"FTCTL_MAX_RETRIES": "0", "FTCTL_CONNECT_TIMEOUT": "1.5",
                                      "FTCTL_READ_TIMEOUT": "30", "FTCTL_RETRY_DELAY": "0",
                                      "FTCTL_ALLOW_INSECURE_HTTP": "1"})
    assert settings == HttpSettings(0, 1.5, 30.0, 0.0, True)
    assert HttpSettings.from_env({}) == HttpSettings(2, 5.0, 60.0, 1.0, False)
    for name, value in (("FTCTL_MAX_RETRIES", "1.5"), ("FTCTL_MAX_RETRIES", "-1"), ("FTCTL_CONNECT_TIMEOUT", "nan"),
                        ("FTCTL_READ_TIMEOUT", "inf"), ("FTCTL_RETRY_DELAY", "-0.1")):
        with pytest.raises(InvalidInput, match=name):
            HttpSettings.from_env({name: value})
