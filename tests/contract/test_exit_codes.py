"""Every exit code of the contract (docs/contract.md, "Exit codes"), produced by a real process.

The table lives once, in ``ftctl.errors.EXIT_CODES``; ``ftctl --help`` and the README list it.
Codes 1 and 4 come from the real (httpx) backend talking to a small local HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from ftctl.errors import EXIT_CODES, ExitCode
from kit import MODEL, ROOT

README = ROOT / "README.md"
KEY = "sk-exit-code-test-key"


@contextmanager
def api(status: int, body: dict) -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server answering every request with ``status`` and ``body``; yields its URL
    and the request lines it received."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def real_backend(url: str, **extra: str) -> dict[str, str]:
    return {"TOGETHER_API_KEY": KEY, "TOGETHER_BASE_URL": url, "FTCTL_RETRY_DELAY": "0", **extra}


def one_error_line(result, code: int, *, data: bool = False) -> str:
    """The last stderr line, an error; stdout empty unless the command still has ``data`` to show."""
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert bool(result.stdout) is data, result.stdout
    assert "Traceback" not in result.stderr and KEY not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def test_0_success(ftctl_proc):
    result = ftctl_proc("list", "--json")
    assert result.exit_code == ExitCode.OK == 0
    assert json.loads(result.stdout) == []


def test_1_server_error_after_retries(ftctl_proc):
    with api(500, {"error": {"message": "upstream exploded"}}) as (url, seen):
        result = ftctl_proc("list", env=real_backend(url, FTCTL_MAX_RETRIES="2"))
    line = one_error_line(result, ExitCode.ERROR)
    assert len(seen) == 3  # the first try and two retries
    assert "upstream exploded" in line and "HTTP 500" in line


def test_1_network_unreachable(ftctl_proc):
    result = ftctl_proc("retrieve", "ft-abc", env=real_backend("http://127.0.0.1:9", FTCTL_MAX_RETRIES="0"))
    assert "cannot reach the API at http://127.0.0.1:9" in one_error_line(result, 1)


@pytest.mark.parametrize("argv,message", [
    (["list", "--bogus"], "No such option: --bogus"),
    (["create", "-t", "f", "-m", MODEL, "--n-evals", "2", "--early-stopping", "--patience", "2", "-v", "v"],
     "--n-evals >= --patience + --warmup-evals + 1"),
    (["retrieve", "not an id!"], "is not a job id"),
])
def test_2_invalid_usage_or_input_sends_nothing(ftctl_proc, argv, message):
    with api(200, {}) as (url, seen):
        result = ftctl_proc(*argv, env=real_backend(url))
    assert message in one_error_line(result, ExitCode.USAGE)
    assert seen == []


def _create(ftctl_proc, *args: str, speed: str = "inf") -> str:
    result = ftctl_proc("create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", *args, "-q",
                        env={"FTCTL_SIM_SPEED": speed})
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def _status(ftctl_proc, job_id: str) -> str:
    return json.loads(ftctl_proc("retrieve", job_id, "--json").stdout)["status"]


def test_3_wait_timed_out_and_the_job_keeps_running(ftctl_proc):
    job_id = _create(ftctl_proc, speed="0.001")
    result = ftctl_proc("wait", job_id, "--timeout", "0.5", "--interval", "0.1")
    line = one_error_line(result, ExitCode.TIMEOUT)
    assert "timed out" in line and job_id in line
    assert _status(ftctl_proc, job_id) in ("pending", "queued", "running")


@pytest.mark.parametrize("how", ["already failed", "fails while waited on", "cancelled", "create --wait"])
def test_5_the_job_ended_unsuccessfully(ftctl_proc, how):
    if how == "already failed":  # gh#3962: a job that had already failed once exited 0
        result = ftctl_proc("wait", _create(ftctl_proc, "--sim-scenario", "error"))
    elif how == "fails while waited on":
        job_id = _create(ftctl_proc, "--sim-scenario", "error", speed="5")  # fails ~3 s from now
        assert _status(ftctl_proc, job_id) != "error"
        result = ftctl_proc("wait", job_id, "--interval", "0.1")
    elif how == "cancelled":
        job_id = _create(ftctl_proc, speed="2")  # the cancellation takes half a second
        assert ftctl_proc("cancel", job_id, "--yes").exit_code == 0
        result = ftctl_proc("wait", job_id, "--interval", "0.1")
    else:
        result = ftctl_proc("create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", "--sim-scenario",
                            "error", "--wait", "-q")
        assert result.exit_code == 5 and re.fullmatch(r"ft-[0-9a-f-]+\n", result.stdout), result
        return
    line = one_error_line(result, ExitCode.JOB_FAILED, data=True)  # wait still shows how the job went
    assert ("cancelled" if how == "cancelled" else "error") in line


@pytest.mark.parametrize("how", ["no key", "key rejected"])
def test_4_authentication_missing_or_rejected(ftctl_proc, how):
    if how == "no key":
        result = ftctl_proc("list", "--backend", "together")
        assert "TOGETHER_API_KEY is not set" in one_error_line(result, ExitCode.AUTH)
        return
    with api(401, {"error": {"message": "Invalid API key provided"}}) as (url, seen):
        result = ftctl_proc("list", env=real_backend(url))
    assert "the API rejected the key" in one_error_line(result, ExitCode.AUTH)
    assert len(seen) == 1  # a rejected key is not retried


def test_6_not_found_on_the_simulator_and_the_api(ftctl_proc):
    assert "ft-missing" in one_error_line(ftctl_proc("events", "ft-missing"), ExitCode.NOT_FOUND)
    with api(404, {"error": {"message": "Fine-tune job not found"}}) as (url, _):
        result = ftctl_proc("checkpoints", "ft-missing", env=real_backend(url))
    assert "not found" in one_error_line(result, 6)


def test_errors_under_json_carry_the_code(ftctl_proc):
    result = ftctl_proc("retrieve", "ft-missing", "--json")
    assert result.exit_code == 6 and result.stdout == ""
    error = json.loads(result.stderr.splitlines()[-1])["error"]
    assert (error["code"], error["exit_code"]) == ("not_found", 6) and "ft-missing" in error["message"]


def _interrupt(argv: list[str], ready: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Start ftctl, wait until ``ready`` shows on stdout or stderr, send SIGINT (Ctrl-C)."""
    proc = subprocess.Popen([sys.executable, "-m", "ftctl", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    seen = []

    def pump(stream) -> None:
        for line in stream:
            seen.append(line)

    readers = [threading.Thread(target=pump, args=(s,), daemon=True) for s in (proc.stdout, proc.stderr)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 60
    while not any(ready in line for line in seen) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "".join(seen)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    for reader in readers:
        reader.join(timeout=10)
    return code, "".join(seen)


def test_130_interrupted_long_running_command():
    code, output = _interrupt(["sim", "serve", "--port", "0"], ready="Ctrl-C to stop")
    assert code == ExitCode.INTERRUPTED == 130, output
    assert "Traceback" not in output


def test_130_interrupted_wait_does_not_cancel_the_job(ftctl_proc):
    job_id = _create(ftctl_proc, speed="0.001")
    code, output = _interrupt(["wait", job_id, "--interval", "0.1"], ready=job_id)
    assert code == 130, output
    assert "Traceback" not in output and "not cancelled" in output
    assert _status(ftctl_proc, job_id) in ("pending", "queued", "running")


# -- the table, in one place, everywhere --------------------------------------------------------------


def test_help_lists_every_code_on_its_own_line(ftctl_proc):
    text = ftctl_proc("--help", env={"COLUMNS": "200"}).stdout
    for code, meaning in EXIT_CODES.items():
        assert re.search(rf"^\s*{int(code)}\s+{re.escape(meaning)}\s*$", text, re.M), (code, text)


def test_readme_table_is_the_contract_table():
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*(.+?)\s*\|\s*$", section, re.M)
    assert [(int(c), m.replace("`", "")) for c, m in rows] == [(int(c), m) for c, m in EXIT_CODES.items()]


def test_the_table_is_the_contracts():
    assert [int(c) for c in EXIT_CODES] == [0, 1, 2, 3, 4, 5, 6, 129, 130, 141, 143]
