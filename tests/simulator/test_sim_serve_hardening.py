"""Issues 11 and 16: ``ftctl sim serve`` against hostile or broken clients, through a real server
process and raw sockets: a body too large, a request sent by halves, many such connections, bytes
that are not HTTP, wrong-typed fields, a damaged store, faults that would break HTTP framing.
Every answer is the API's error envelope; nothing the server knows about its host leaks out."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from served import TOKEN, served

TIMEOUT = 1.0  # the server's --request-timeout in this module
BOUND = 15.0  # a dropped connection must be closed well within this (the deadline plus slack)
MIB = 1024 * 1024
AUTH = f"Authorization: Bearer {TOKEN}\r\n"
BASE = {"training_file": "file-train", "model": "Qwen/Qwen3.5-9B"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("hardening"), args=("--faults", "--request-timeout", str(TIMEOUT))) as s:
        yield s


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        server.clear()
        yield c
        server.clear()


def address(server) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def connect(server) -> socket.socket:
    sock = socket.create_connection(address(server), timeout=BOUND)
    return sock


def read_until_closed(sock: socket.socket, limit: float = BOUND) -> bytes:
    """Everything the server sends until it closes the connection (fails if it does not, in time)."""
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"the server kept the connection open for {limit} s; it sent {data[:200]!r}")
    return data


def envelope(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers["content-type"].startswith("application/json"), raw[:300]
    document = json.loads(body)
    assert set(document) == {"error"} and isinstance(document["error"]["message"], str), document
    return int(lines[0].split()[1]), headers, document["error"]


def assert_serving(client) -> None:
    assert client.get("/v1/fine-tunes").status_code == 200


# -- the body limit ---------------------------------------------------------------------------------


def test_a_declared_1_gb_body_is_refused_413_before_it_is_sent(server, client):
    with connect(server) as sock:
        sock.sendall(f"POST /v1/fine-tunes HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\n"
                     f"Content-Length: {1024 * MIB}\r\n\r\n{{\"training_file\": ".encode())
        status, headers, error = envelope(read_until_closed(sock))
    assert status == 413 and error["code"] == "request_too_large" and "16 MiB" in error["message"]
    assert headers["connection"] == "close"
    assert_serving(client)


def stream_chunked(server, path: str, total: int) -> bytes:
    """POST ``total`` bytes chunked (no Content-Length) from a thread, reading the answer meanwhile."""
    sock = connect(server)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{AUTH}Transfer-Encoding: chunked\r\n\r\n".encode())

    def send() -> None:
        chunk = b"x" * MIB
        try:
            for _ in range(total // MIB):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: the point

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return read_until_closed(sock)
    finally:
        sock.close()
        sender.join(BOUND)


def test_a_streamed_body_past_16_mib_is_cut_off_with_413(server, client):
    status, _, error = envelope(stream_chunked(server, "/v1/fine-tunes", 64 * MIB))
    assert status == 413 and error["code"] == "request_too_large"
    assert_serving(client)


def test_a_body_under_the_limit_is_still_read(client):
    padded = {**BASE, "suffix": "ok", "wandb_name": "w" * (4 * MIB)}  # a large, valid body
    assert client.post("/v1/fine-tunes", json=padded).status_code == 200


# -- slow and half-open clients ------------------------------------------------------------------------


@pytest.mark.parametrize("half", [
    b"GET /v1/fine-tunes HTTP/1.1\r\nHost: x\r\n",  # headers never finished
    b"GET /v1/fine-tunes HTTP/1.1\r\nHost: x\r\nAuthoriz",
    b"POST /v1/fine-tunes HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"Content-Length: 100\r\n\r\n{\"trai",
], ids=["headers", "mid-header", "body"])
def test_a_client_sending_half_a_request_gets_408_and_is_dropped(server, client, half):
    with connect(server) as sock:
        sock.sendall(half)
        assert_serving(client)  # meanwhile, others are served
        status, _, error = envelope(read_until_closed(sock))
    assert status == 408 and error["code"] == "request_timeout"
    assert f"not complete within {TIMEOUT:g} s" in server.logged("dropped")


def test_a_slowloris_trickling_bytes_is_dropped_at_the_deadline(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v1/fine-tunes HTTP/1.1\r\n")
        sock.settimeout(0.2)
        deadline = time.monotonic() + BOUND
        answer = None
        while answer is None and time.monotonic() < deadline:
            try:
                sock.sendall(b"X-A: b\r\n")  # a header line every 0.2 s: never idle, never done
                answer = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                answer = b""
        assert answer is not None, "a client trickling header lines was served forever"
        if answer:
            assert envelope(answer + read_until_closed(sock))[0] == 408


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts file descriptors in /proc")
def test_hundreds_of_half_open_connections_are_all_closed_and_cost_no_descriptors(server, client):
    pid = server.process.pid
    before = open_fds(pid)
    socks = [connect(server) for _ in range(300)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(b"GET /v1/fine-tunes HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
        assert_serving(client)
        for sock in socks:
            read_until_closed(sock)
    finally:
        for sock in socks:
            sock.close()
    assert_serving(client)
    deadline = time.monotonic() + BOUND
    while open_fds(pid) > before + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(pid) <= before + 5
    log = server.log()
    assert "Traceback" not in log and "Exception" not in log
    assert log.count("dropped") <= 400  # one line per connection that began a request, not a dump


def test_more_connections_than_the_cap_are_refused_with_503_not_queued(server, client):
    from ftctl.backends.simulator.server import MAX_CONNECTIONS

    socks = []
    try:
        for _ in range(MAX_CONNECTIONS + 20):
            socks.append(connect(server))
        refused = socks[-1]
        status, _, error = envelope(read_until_closed(refused))
        assert status == 503 and error["code"] == "too_many_connections"
    finally:
        for sock in socks:
            sock.close()
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        try:
            assert_serving(client)
            break
        except (AssertionError, httpx.HTTPError):
            time.sleep(0.1)
    assert_serving(client)


# -- malformed requests: 400 with the envelope, never 500 --------------------------------------------


@pytest.mark.parametrize("field, value, named", [
    ("lr_scheduler", "cosine", "lr_scheduler"), ("lr_scheduler", [1], "lr_scheduler"),
    ("lr_scheduler", {"lr_scheduler_type": "cosine", "lr_scheduler_args": "x"}, "lr_scheduler_args"),
    ("training_type", "Lora", "training_type"), ("training_type", [1], "training_type"),
    ("training_method", "sft", "training_method"), ("training_method", ["sft"], "training_method"),
    ("training_method", {"method": "sft", "train_on_inputs": {}}, "train_on_inputs"),
    ("training_method", {"method": "dpo", "dpo_reference_free": "yes"}, "dpo_reference_free"),
    ("packing", "yes", "packing"), ("wandb_name", [1], "wandb_name"), ("multimodal_params", 3, "multimodal_params"),
    ("training_type", {"type": "Lora", "lora_trainable_modules": 5}, "lora_trainable_modules"),
    ("n_epochs", "5", "n_epochs"), ("model", ["m"], "model"), ("suffix", {"a": 1}, "suffix"),
])
def test_a_wrong_typed_create_field_is_a_400_naming_it(client, field, value, named):
    response = client.post("/v1/fine-tunes", json={**BASE, field: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and named in error["message"], error


@pytest.mark.parametrize("body", [{"training_file": "f", "n_evals": "x"}, {"training_file": ["f"]},
                                  {"training_file": "f", "n_epochs": 10**40}])
def test_a_wrong_typed_estimate_is_a_400(client, body):
    response = client.post("/v1/fine-tunes/estimate-price", json=body)
    assert response.status_code == 400 and response.json()["error"]["message"], response.text


@pytest.mark.parametrize("method, path, kwargs", [
    ("POST", "/v1/fine-tunes", {"content": b"{\"training_file\": "}),
    ("POST", "/v1/fine-tunes", {"content": b"\xff\xfe"}),
    ("POST", "/v1/fine-tunes", {"content": b"[" * 100_000}),
    ("POST", "/v1/fine-tunes", {"json": ["a"]}),
    ("POST", "/v1/fine-tunes", {"json": "text"}),
    ("POST", "/v1/fine-tunes/estimate-price", {"json": 3}),
    ("GET", "/v1/fine-tunes/models/limits", {"params": {"model_name": "a\x00b"}}),
])
def test_bad_json_and_bad_parameters_are_400_envelopes(client, method, path, kwargs):
    response = client.request(method, path, **kwargs)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_bad_metrics_query_parameters_are_400_envelopes(client):
    job = client.post("/v1/fine-tunes", json={**BASE, "validation_file": "file-val", "n_evals": 2}).json()
    for query in ({"resolution": "-1"}, {"resolution": "1e3"}, {"global_step_from": "\x00"},
                  {"logged_at_from": "yesterday"}, {"global_step_to": "x"}):
        response = client.get(f"/v1/fine-tunes/{job['id']}/metrics", params=query)
        assert response.status_code == 400 and response.json()["error"]["message"], (query, response.text)


def test_bytes_that_are_not_http_get_a_400_envelope(server, client):
    with connect(server) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n")
        status, _, error = envelope(read_until_closed(sock))
    assert status == 400 and error["type"] == "invalid_request_error"
    assert_serving(client)


# -- nothing of the host in an answer ------------------------------------------------------------------


@pytest.mark.parametrize("damage, read", [
    ("UPDATE jobs SET speed = 'fast' WHERE id = ?", "/v1/fine-tunes/{id}"),  # what a job's view reads
    ("UPDATE jobs SET final_job = '[1, 2]' WHERE id = ?", "/v1/fine-tunes"),  # what a listing copies
])
def test_a_damaged_store_answers_500_without_the_servers_paths(tmp_path, damage, read):
    home = tmp_path / "home-with-a-secret-name"
    with served(home) as server, httpx.Client(base_url=server.url, timeout=30,
                                             headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        job_id = client.post("/v1/fine-tunes", json=BASE).json()["id"]
        db = home / "simulator.db"
        with sqlite3.connect(db) as damaging:  # a row no simulator could have written
            damaging.execute(damage, (job_id,))
        response = client.get(read.format(id=job_id))
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["type"] == "server_error" and error["message"]
        assert str(tmp_path) not in response.text and "secret-name" not in response.text
        assert str(db) in server.logged(str(db))  # the operator still learns where and what


# -- faults can't break HTTP framing -------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"kind": "status", "status": 429, "retry_after": "1\r\nX-Injected: yes"},
    {"kind": "status", "status": 503, "retry_after_ms": "5\n"},
    {"kind": "html", "status": 204}, {"kind": "empty", "status": 304}, {"kind": "malformed", "status": 101},
])
def test_a_fault_that_would_break_http_is_refused_at_the_admin_endpoint(server, client, fault):
    response = client.post("/_sim/faults", json=fault)
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_fault"
    assert server.pending() == []
    assert_serving(client)
