"""A hostile API server for tests and benchmarks: raw sockets on 127.0.0.1 and a free port, so it can
say what no well-behaved framework would (a broken status line, a header that is not one, a body
shorter than its Content-Length, a byte a second).

    with Hostile("gzip-bomb") as server:
        server.url, server.mode = "drip", server.requests

Each mode is one misbehaviour, applied to every request (``MODES`` lists them, by family). Modes
that echo use the request's own ``Authorization`` value: a leak is then exactly the key ftctl sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from functools import lru_cache
from typing import Callable

JOB_ID = "ft-0a0a0a0a-1b1b-2c2c-3d3d-4e4e4e4e4e4e"

# Families, for the counts the issue asks for. Every mode is in exactly one.
FAMILIES: dict[str, tuple[str, ...]] = {
    "echo": ("status-line-echo", "reason-echo", "header-echo", "message-echo-at-cut", "message-echo-split",
             "body-echo-escaped", "html-echo", "redirect-echo", "url-credentials-echo"),
    "size": ("gzip-bomb", "deflate-bomb", "endless-chunked", "huge-object", "unknown-encoding"),
    "time": ("drip",),
    "cut": ("truncated-body", "truncated-json", "closed-without-answer"),
    "types": ("string-numbers", "nulls", "lists-for-objects", "objects-for-lists", "huge-numbers",
              "control-characters", "deep-nesting"),
}
MODES = tuple(mode for family in FAMILIES.values() for mode in family)


def family_of(mode: str) -> str:
    return next(name for name, modes in FAMILIES.items() if mode in modes)


class Hostile:
    def __init__(self, mode: str = "string-numbers", *, drip_every: float = 1.0, bomb_mib: int = 1024) -> None:
        self.mode = mode
        self.drip_every = drip_every
        self.bomb_mib = bomb_mib
        self.requests = 0
        self.seen: list[str] = []  # "METHOD /path" of each request, in order
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        if mode.endswith("-bomb"):
            bomb_bytes(bomb_mib, mode.split("-")[0])  # made before the first request, not during it

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            head, body = _read_request(conn)
            if head is None:
                return
            self.requests += 1
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            self.seen.append(f"{method} {path.split('?')[0]}")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            answer = getattr(self, "_" + self.mode.replace("-", "_"))
            answer(conn, method, path, headers.get("authorization", ""), body)
        except OSError:  # the client gave up: that is what these modes are for
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _send(self, conn: socket.socket, status: bytes, body: bytes | None, headers: tuple[bytes, ...] = (),
              *, length: int | None = None) -> None:
        head = [b"HTTP/1.1 " + status, *headers, b"Connection: close"]
        if body is not None:
            head.append(b"Content-Length: %d" % (len(body) if length is None else length))
        conn.sendall(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))

    def _json(self, conn: socket.socket, value: object, status: bytes = b"200 OK") -> None:
        self._send(conn, status, json.dumps(value).encode(), (b"Content-Type: application/json",))

    def _shaped(self, conn: socket.socket, method: str, path: str, job: dict,
                item: Callable[[str], object]) -> None:
        """A well-shaped answer for ``path`` built from ``job`` and list items from ``item(kind)``."""
        if path.rstrip("/").endswith("/fine-tunes") and method == "GET":
            self._json(conn, {"data": [job, job]})
        elif "/events" in path:
            self._json(conn, {"data": [item("event"), item("event")]})
        elif "/checkpoints" in path:
            self._json(conn, {"data": [item("checkpoint")]})
        elif "/metrics" in path:
            self._json(conn, {"metrics": [item("metric"), item("metric")]})
        else:
            self._json(conn, job)

    # -- echo: the key sent back wherever a server can put it ------------------------------------

    def _status_line_echo(self, conn, method, path, auth, body):
        conn.sendall(b"HTTP/1.1 2x0 " + auth.encode() + b"\r\nContent-Length: 0\r\n\r\n")

    def _reason_echo(self, conn, method, path, auth, body):
        self._send(conn, b"503 " + auth.encode(), b"")

    def _header_echo(self, conn, method, path, auth, body):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Echo " + auth.encode() + b"\r\nContent-Length: 2\r\n\r\n{}")

    def _message_echo_at_cut(self, conn, method, path, auth, body):
        key = auth.split()[-1]
        pad = "x" * (300 - len(key) // 2 - len("key "))  # the key straddles the 300-character cut
        self._json(conn, {"error": {"message": f"{pad} key {key} was wrong"}}, b"400 Bad Request")

    def _message_echo_split(self, conn, method, path, auth, body):
        key = auth.split()[-1]
        split = "\n".join(key[i:i + 5] for i in range(0, len(key), 5))
        self._json(conn, {"error": {"message": f"bad key:\n{split}\n\t(Bearer\n{key})"}}, b"401 Unauthorized")

    def _body_echo_escaped(self, conn, method, path, auth, body):
        key = auth.split()[-1]
        text = f"{key[:9]}\n{key[9:30]}\r\n{key[30:]} not json: {auth}".encode()
        self._send(conn, b"200 OK", text, (b"Content-Type: text/plain",))

    def _html_echo(self, conn, method, path, auth, body):
        page = f"<html><head><title>denied {auth}</title></head><body><h1>{auth}</h1></body></html>"
        self._send(conn, b"502 Bad Gateway", page.encode(), (b"Content-Type: text/html",))

    def _redirect_echo(self, conn, method, path, auth, body):
        key = auth.split()[-1]
        self._send(conn, b"302 Found", f"moved, with {auth}".encode(),
                   (f"Location: https://elsewhere.example/v1{path}?api_key={key}".encode(),))

    def _url_credentials_echo(self, conn, method, path, auth, body):
        key = auth.split()[-1]
        self._json(conn, {"message": f"use https://user:{key}@api.example/v1 instead", "details": [
            {"detail": f"Authorization: {auth}"}]}, b"400 Bad Request")

    # -- size: bodies that would eat memory --------------------------------------------------------

    def _gzip_bomb(self, conn, method, path, auth, body):
        bomb = bomb_bytes(self.bomb_mib, "gzip")
        self._send(conn, b"200 OK", bomb, (b"Content-Type: application/json", b"Content-Encoding: gzip"))

    def _deflate_bomb(self, conn, method, path, auth, body):
        bomb = bomb_bytes(self.bomb_mib, "deflate")
        self._send(conn, b"200 OK", bomb, (b"Content-Type: application/json", b"Content-Encoding: deflate"))

    def _endless_chunked(self, conn, method, path, auth, body):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        conn.sendall(b"1\r\n[\r\n")
        while not self._stop.is_set():
            conn.sendall(frame)

    def _huge_object(self, conn, method, path, auth, body):
        huge = "m" * (8 * 2**20)
        self._shaped(conn, method, path, {**_job(), "model": huge}, lambda kind: {**_item(kind), "path": huge})

    def _unknown_encoding(self, conn, method, path, auth, body):
        self._send(conn, b"200 OK", b"\x00" * 64, (b"Content-Encoding: br",))

    # -- time: a byte a second ----------------------------------------------------------------------

    def _drip(self, conn, method, path, auth, body):
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps(_job()).encode()
        for byte in answer:
            if self._stop.is_set():
                return
            conn.sendall(bytes([byte]))
            time.sleep(self.drip_every)

    # -- cut: answers that stop short ---------------------------------------------------------------

    def _truncated_body(self, conn, method, path, auth, body):
        whole = json.dumps(_job()).encode()
        self._send(conn, b"200 OK", whole[:40], (b"Content-Type: application/json",), length=len(whole))

    def _truncated_json(self, conn, method, path, auth, body):
        self._send(conn, b"200 OK", json.dumps(_job()).encode()[:40], (b"Content-Type: application/json",))

    def _closed_without_answer(self, conn, method, path, auth, body):
        conn.shutdown(socket.SHUT_RDWR)

    # -- types: the documented shape, with the wrong types inside -----------------------------------

    def _string_numbers(self, conn, method, path, auth, body):
        job = {**_job(), "total_steps": "120", "steps_completed": "72", "evals_completed": "6",
               "n_evals": "10", "eval_steps": "12", "early_stopping_best_step": "48",
               "early_stopping_best_metric": "0.4213", "total_price": "144000000", "n_epochs": "5"}
        self._shaped(conn, method, path, job, lambda kind: {
            "event": {"type": "early_stopped", "step": "72", "early_stopping_best_step": "48",
                      "early_stopping_best_metric_value": "0.4213", "message": "stopped"},
            "checkpoint": {"step": "48", "path": "s3://b/48", "checkpoint_type": "Final"},
            "metric": {"train/global_step": "12", "eval/loss": "0.5", "timestamp": "1700000000"}}[kind])

    def _nulls(self, conn, method, path, auth, body):
        job = {k: None for k in _job()} | {"id": JOB_ID, "status": "completed"}
        self._shaped(conn, method, path, job, lambda kind: {"event": {"type": None, "message": None, "step": None},
                                                   "checkpoint": {"step": 1, "path": None},
                                                   "metric": {"train/global_step": None, "eval/loss": None}}[kind])

    def _lists_for_objects(self, conn, method, path, auth, body):
        job = {**_job(), "progress": [1, 2], "training_method": ["sft"], "lr_scheduler": [], "events": [[1]]}
        self._shaped(conn, method, path, job, lambda kind: [kind, 1])

    def _objects_for_lists(self, conn, method, path, auth, body):
        if (path.rstrip("/").endswith("/fine-tunes") and method == "GET") or "/events" in path or "/checkpoints" in path:
            self._json(conn, {"data": {"0": _job()}})
        elif "/metrics" in path:
            self._json(conn, {"metrics": {"train/global_step": 1}})
        else:
            self._json(conn, [_job()])

    def _huge_numbers(self, conn, method, path, auth, body):
        text = json.dumps({**_job(), "early_stopping_best_metric": 7771, "total_steps": 7772,
                           "steps_completed": 7773, "progress": {"seconds_remaining": 7774}, "total_price": 7775})
        for marker, value in (("7771", "1e400"), ("7772", "1" + "0" * 25), ("7773", "1" + "0" * 24),
                              ("7774", "1e309"), ("7775", "-1" + "0" * 30)):
            text = text.replace(marker, value)
        metric = '{"train/global_step": 1e400, "eval/loss": 1e400, "timestamp": -1e999}'
        if path.rstrip("/").endswith("/fine-tunes") and method == "GET":
            out = '{"data": [%s]}' % text
        elif "/metrics" in path:
            out = '{"metrics": [%s, %s]}' % (metric, metric)
        elif "/events" in path:
            out = '{"data": [{"step": 1e400, "early_stopping_best_metric_value": -1e400, "message": "x"}]}'
        elif "/checkpoints" in path:
            out = '{"data": [{"step": %s}]}' % ("9" * 4000)
        else:
            out = text
        self._send(conn, b"200 OK", out.encode(), (b"Content-Type: application/json",))

    def _control_characters(self, conn, method, path, auth, body):
        odd = "a\x00b\x1b[2Jc\rd\u2028e\x7f\ud800"
        job = {**_job(), "model": odd, "status": "completed\x00", "model_output_name": odd, "created_at": odd}
        self._shaped(conn, method, path, job, lambda kind: {
            "event": {"type": odd, "level": odd, "message": odd, "created_at": odd},
            "checkpoint": {"step": 1, "path": odd, "checkpoint_type": odd, "created_at": odd},
            "metric": {"train/global_step": 1, "eval/loss": 0.5, odd: odd}}[kind])

    def _deep_nesting(self, conn, method, path, auth, body):
        deep = "[" * 50_000 + "]" * 50_000
        text = json.dumps(_job())[:-1] + ', "progress": %s}' % deep
        self._send(conn, b"200 OK", text.encode(), (b"Content-Type: application/json",))


def _job() -> dict:
    return {"id": JOB_ID, "status": "completed", "model": "m", "created_at": "2026-06-01T10:00:00.000Z",
            "total_steps": 120, "steps_completed": 72, "n_evals": 10, "evals_completed": 6, "eval_steps": 12,
            "n_epochs": 5, "early_stopped": True, "early_stopping_best_step": 48,
            "early_stopping_best_metric": 0.4213, "total_price": 144000000}


def _item(kind: str) -> dict:
    return {"event": {"type": "job_pending", "message": "ok"}, "checkpoint": {"step": 48, "path": "s3://b"},
            "metric": {"train/global_step": 12, "eval/loss": 0.5}}[kind]


@lru_cache(maxsize=4)
def bomb_bytes(mib: int, encoding: str = "gzip") -> bytes:
    """``mib`` MiB of spaces after a ``[``, compressed (about 1 KiB per MiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    block = b" " * 2**20
    parts = [packer.compress(b"[")]
    parts += [packer.compress(block) for _ in range(mib)]
    return b"".join(parts) + packer.flush()


def _read_request(conn: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head, rest


MEASURE = """
import json, resource, subprocess, sys, time
started = time.monotonic()
proc = subprocess.run([sys.executable, "-m", "ftctl", *sys.argv[1:]], capture_output=True, text=True)
print(json.dumps({"exit_code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                  "seconds": time.monotonic() - started,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(argv: list[str], env: dict[str, str], timeout: float = 300) -> dict:
    """Run ``python -m ftctl ARGV`` as a real process (through a fresh parent, so that the peak
    resident size of its children is ftctl's alone): exit code, outputs, seconds, peak RSS in MiB
    (``resource.getrusage(RUSAGE_CHILDREN)``; Linux reports KiB)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", MEASURE, *argv], capture_output=True, text=True, env=env,
                          timeout=timeout)
    return json.loads(done.stdout)
