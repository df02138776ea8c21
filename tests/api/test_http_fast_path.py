"""The HTTP backend's fast path (issue 15, item 4): what a command over ``sim serve`` asks for,
what it imports, what TLS set-up it does, and that a long list decoded while it arrives is exactly
the list decoded whole. Deterministic guards; the timings are in ``benchmarks/run.py``."""

from __future__ import annotations

import json
import math
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kit import create_job
from served import served

from ftctl.backends import arriving_list
from ftctl.backends.arriving_list import ArrivingList
from ftctl.config import Config
from ftctl.errors import ApiError

KEY = "tok-fast-path"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One served simulator over a store that holds a finished job (made on the embedded simulator)."""
    home = tmp_path_factory.mktemp("fast") / "home"
    env = {**os.environ, "FTCTL_HOME": str(home), "FTCTL_SIM_SPEED": "inf"}
    env.pop("TOGETHER_API_KEY", None)
    made = subprocess.run([sys.executable, "-m", "ftctl", "create", "-t", "file-train", "-v", "file-val", "-m",
                           "Qwen/Qwen3.5-9B", "--n-evals", "8", "--early-stopping", "-q"],
                          capture_output=True, text=True, env=env, timeout=60, check=True)
    with served(home, args=()) as s:
        s.job_id = made.stdout.strip()
        s.home = home
        yield s


def config(url: str) -> Config:
    return Config("together", False, url, Path("/nonexistent"), 1.0, api_key=KEY)


def modules(server, *args: str) -> set[str]:
    """The modules ``ftctl ARGS`` imports on the together backend pointed at ``server``."""
    env = {**os.environ, "FTCTL_HOME": str(server.home), "TOGETHER_API_KEY": KEY}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftctl", *args, "--backend", "together",
                           "--base-url", server.url], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("command", [["retrieve"], ["retrieve", "--json"], ["metrics"], ["events"], ["list"]])
def test_a_well_typed_answer_needs_neither_pydantic_nor_httpx_s_own_cli(server, command):
    args = [command[0], server.job_id, *command[1:]] if command[0] != "list" else command
    names = modules(server, *args)
    assert "ftctl.backends.together" in names  # it did go over HTTP
    # the models are for answers that are not plainly valid; click and pygments come only with httpx._main
    assert not names & {"pydantic", "ftctl.models", "click", "pygments", "rich.progress", "rich.syntax"}


def test_metrics_reads_the_job_from_its_list_item_never_with_its_event_log(server, ftctl):
    before = len(server.log())
    result = ftctl("metrics", server.job_id, "--json", "--backend", "together", "--base-url", server.url,
                   env={"TOGETHER_API_KEY": KEY, "FTCTL_HOME": str(server.home)})
    assert result.exit_code == 0, result.stderr
    assert result.json()["job_id"] == server.job_id
    log = server.logged(f"GET /v1/fine-tunes/{server.job_id}/metrics", since=before)
    asked = [line.split()[2] for line in log.splitlines() if " GET " in line]
    assert f"/v1/fine-tunes/{server.job_id}/metrics" in asked
    assert f"/v1/fine-tunes/{server.job_id}" not in asked  # the retrieve answer embeds every event


def test_the_metrics_answer_is_streamed_and_byte_for_byte_the_simulators_rows(server):
    import httpx

    from ftctl.backends.simulator.backend import Simulator
    from ftctl.wire import dumps

    answer = httpx.get(f"{server.url}/v1/fine-tunes/{server.job_id}/metrics",
                       headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.headers.get("transfer-encoding") == "chunked"  # sent as it is encoded
    rows = Simulator(server.home, speed=math.inf).metrics(server.job_id)
    assert answer.content == dumps({"metrics": list(rows)}).encode()


def body_of(response) -> bytes:
    """What a Starlette response sends as its body."""
    import asyncio

    sent = []

    async def receive():
        await asyncio.sleep(3600)  # the client never disconnects

    async def send(message):
        sent.append(message.get("body", b""))

    asyncio.run(response({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send))
    return b"".join(sent)


def test_the_streamed_list_is_what_the_whole_answer_was_non_finite_numbers_included():
    from ftctl.backends.simulator.server import json_response, list_response
    from ftctl.wire import CHUNK

    rows = [{"train/global_step": i, "eval/loss": [0.5, math.nan, math.inf, -math.inf][i % 4], "n": "é"}
            for i in range(CHUNK * 2 + 7)]
    assert body_of(list_response("metrics", iter(rows))) == body_of(json_response({"metrics": rows}))
    assert body_of(list_response("metrics", [])) == b'{"metrics":[]}'


def served_body(app, path: str) -> bytes:
    """What the ASGI ``app`` answers to ``GET path`` (with a bearer token)."""
    import asyncio

    sent, status = [], []

    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.sleep(3600)  # the client stays until the answer is complete

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])
        sent.append(message.get("body", b""))

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"authorization", b"Bearer t")], "client": ("127.0.0.1", 1), "server": ("x", 80),
             "scheme": "http", "root_path": "", "http_version": "1.1"}
    asyncio.run(app(scope, receive, send))
    assert status == [200], (status, sent)
    return b"".join(sent)


def test_a_finished_jobs_metrics_are_encoded_once_and_a_running_jobs_every_time(tmp_path):
    from ftctl.backends.simulator.backend import Simulator
    from ftctl.backends.simulator.server import create_app
    from ftctl.wire import dumps

    now = [1_000_000.0]
    sim = Simulator(tmp_path, speed=1.0, clock=lambda: now[0])
    job = sim.create({"model": "Qwen/Qwen3.5-9B", "training_file": "file-train", "validation_file": "file-val",
                      "n_evals": 40, "early_stopping_enabled": True})["id"]
    made = []
    real = sim.metrics
    sim.metrics = lambda *a, **k: made.append(1) or real(*a, **k)
    app = create_app(sim, log=lambda line: None)
    path = f"/v1/fine-tunes/{job}/metrics"

    now[0] += 5  # running: each read made anew, as the job moves on
    first = served_body(app, path)
    now[0] += 5
    assert served_body(app, path) != first and len(made) == 2

    now[0] += 10**6  # ended: made once, then the same bytes from memory
    answers = [served_body(app, path) for _ in range(3)]
    assert len(made) == 3
    assert answers[0] == answers[1] == answers[2] == dumps({"metrics": list(real(job))}).encode()


def test_kept_answers_stay_within_their_budget_most_recent_first():
    from ftctl.backends.simulator.server import Kept

    kept = Kept(budget=10)
    kept.put("a", [b"1234"])
    kept.put("b", [b"12", b"34"])
    assert kept.get("a") == [b"1234"]  # now the most recently used
    kept.put("c", [b"1234"])  # 12 bytes: the least recently used goes
    assert kept.get("b") is None and kept.get("a") == [b"1234"] and kept.get("c") == [b"1234"]
    kept.put("huge", [b"x" * 11])  # larger than the whole budget: not kept, nothing dropped for it
    assert kept.get("huge") is None and kept.get("a") is not None and kept.size == 8


def test_plain_http_builds_no_certificate_store_and_https_still_verifies(server, monkeypatch):
    from ftctl.backends.together import HttpSettings, TogetherBackend

    loaded = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: loaded.append(a or k) or real(self, *a, **k))
    plain = TogetherBackend(config(server.url))
    try:
        assert plain.retrieve(server.job_id)["id"] == server.job_id
    finally:
        plain.close()
    assert loaded == []  # a loopback simulator over http: no CA bundle read
    tls = TogetherBackend(config("https://127.0.0.1:9"),
                          settings=HttpSettings(max_retries=0))
    try:
        with pytest.raises(ApiError, match="cannot reach"):
            tls.retrieve("ft-x")
    finally:
        tls.close()
    assert loaded  # https: the verifying context, with the CA bundle, as before


# -- a long list decoded as it arrives ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet="ab},{[]\"\\é\ud800 ", max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="ab}{,", max_size=3), inner,
                                                               max_size=3),
    max_leaves=8)


def arrive(body: bytes, step: int, piece: int = arriving_list.PIECE) -> dict | None:
    decoder = ArrivingList("metrics", piece=piece)
    so_far = bytearray()
    for i in range(0, len(body), step):
        so_far += body[i:i + step]
        decoder.feed(so_far)
    return decoder.result(bytes(so_far))


@settings(max_examples=400, deadline=None)
@given(items=st.lists(json_values, max_size=6), ascii_only=st.booleans(), step=st.integers(1, 40),
       tail=st.sampled_from(["]}", "]} \n", "],\"metrics\":[]}", "],\"x\":1}", "]", "]}x", "}", ""]),
       head=st.sampled_from(['{"metrics":[', '{ "metrics":[', '{"data":[']))
def test_a_list_decoded_as_it_arrives_is_exactly_the_list_decoded_whole(items, ascii_only, step, tail, head):
    text = ",".join(json.dumps(item, separators=(",", ":"), ensure_ascii=ascii_only) for item in items)
    body = (head + text + tail).encode("utf-8", "surrogatepass")
    got = arrive(body, step, piece=1)  # cut at every "},{" it can
    if got is not None:
        assert repr(got) == repr(json.loads(body.decode("utf-8", "replace")))  # repr: NaN equals NaN


def test_a_metrics_answer_is_decoded_as_it_arrives():
    rows = [{"timestamp": 1.5e18 + i, "train/global_step": i, "eval/loss": 1 / (i + 1)} for i in range(20_000)]
    body = json.dumps({"metrics": rows}, separators=(",", ":")).encode()
    assert len(body) > 3 * arriving_list.PIECE
    assert arrive(body, 65536) == {"metrics": rows}
