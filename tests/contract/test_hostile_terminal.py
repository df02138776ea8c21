"""Issue 11, the terminal side: what reaches the user's terminal, and how every command ends when
its streams, its encoding or a signal are against it. All through real ``python -m ftctl``
processes: closed descriptors, /dev/full, a pipe whose reader is gone, non-UTF-8 encodings, a
pseudo-terminal for SIGTERM/SIGHUP during a live ``wait``, and a hostile server on loopback.

Families (each a parametrised matrix, so ``pytest -v`` counts tries and failures per family):
``test_control_characters_*`` (server text × command × terminal or pipe), ``test_encoding_*``
(command × encoding × terminal or pipe), ``test_stream_*`` (command × stream failure),
``test_signal_*`` (signal during a live wait).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

JOB_ID = "ft-11111111-2222-3333-4444-555555555555"
KEY = "tgk-hostile-terminal-key"
# An OSC that retitles the window and rings the bell, a clear-screen, an 8-bit CSI, a right-to-left
# override, a backspace and a carriage return: each would act on a terminal if written as is.
HOSTILE = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eright\x08\r"
RAW = ["\x1b]0;pwned", "\x07", "\x1b[2J", "\x9b", "\u202e", "\x08", "\r"]

JOB = {"id": JOB_ID, "status": "completed", "created_at": "2026-06-01T10:00:00.000Z",
       "updated_at": "2026-06-01T10:30:00.000Z", "model": HOSTILE, "model_output_name": HOSTILE,
       "training_file": "file-t", "validation_file": "file-v", "n_epochs": 1, "n_evals": 4,
       "total_steps": 40, "steps_completed": 40, "evals_completed": 4, "epochs_completed": 1,
       "early_stopped": False}
OTHER = {**JOB, "id": "ft-99999999-2222-3333-4444-555555555555", "status": HOSTILE}
EVENTS = [{"object": "fine-tune-event", "created_at": "2026-06-01T10:00:00.000Z", "type": HOSTILE,
           "level": "info", "message": HOSTILE}]
CHECKPOINTS = [{"step": 40, "path": HOSTILE, "created_at": "2026-06-01T10:29:00.000Z", "checkpoint_type": HOSTILE}]
METRICS = [{"train/global_step": s, "eval/loss": v} for s, v in ((10, 1.0), (20, 0.8), (30, 0.7), (40, 0.6))]
BAD_ID = "ft-00000000-0000-0000-0000-000000000000"


class Hostile(BaseHTTPRequestHandler):
    """The API's shapes, with escape sequences in every text field; 400 with one in the message."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        routes = {"/v1/fine-tunes": {"data": [JOB, OTHER]}, f"/v1/fine-tunes/{JOB_ID}": JOB,
                  f"/v1/fine-tunes/{JOB_ID}/events": {"data": EVENTS},
                  f"/v1/fine-tunes/{JOB_ID}/checkpoints": {"data": CHECKPOINTS},
                  f"/v1/fine-tunes/{JOB_ID}/metrics": {"metrics": METRICS}}
        body, code = (routes[path], 200) if path in routes else ({"error": {"message": HOSTILE}}, 400)
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(args, *, env=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftctl", *map(str, args)], env={**os.environ, **(env or {})},
                          stdin=stdin, stdout=stdout, stderr=stderr, preexec_fn=preexec_fn, timeout=timeout)


def on_api(url: str, *args: str) -> list[str]:
    return [*args, "--backend", "together", "--base-url", url]


# -- control characters from a server ----------------------------------------------------------------

# command, does it show the hostile text (escaped), exit code
SHOWS = [(("list",), True, 0), (("retrieve", JOB_ID), True, 0), (("events", JOB_ID), True, 0),
         (("checkpoints", JOB_ID), True, 0), (("wait", JOB_ID), True, 0), (("metrics", JOB_ID), False, 0),
         (("explain", JOB_ID), False, 0), (("retrieve", BAD_ID), True, 1), (("events", BAD_ID), True, 1)]


@pytest.mark.parametrize("where", ["pipe", "terminal"])
@pytest.mark.parametrize("command, shows, code", SHOWS, ids=[" ".join(c[0])[:12] for c in SHOWS])
def test_control_characters_from_a_server_are_shown_escaped(hostile_url, command, shows, code, where):
    env = {"TOGETHER_API_KEY": KEY, "NO_COLOR": "1", **({"FTCTL_FORCE_TTY": "200"} if where == "terminal" else {})}
    proc = run(on_api(hostile_url, *command), env=env)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == code, err
    for raw in RAW if where == "pipe" else RAW[:-1]:  # on a terminal the live view moves with CR itself
        assert raw not in out and raw not in err, (raw, out, err)
    if shows:  # escaped where it stands (Rich drops BEL, BS and CR itself on a terminal)
        flat = "".join((out + err).split())
        assert "evil\\x1b]0;pwned" in flat and "\\x1b[2J\\x9b31m\\u202eright" in flat, (out, err)
    if where == "pipe":
        assert "\x1b" not in out + err
    assert "Traceback" not in err and "internal error" not in err


@pytest.mark.parametrize("command", [("retrieve", JOB_ID), ("events", JOB_ID), ("checkpoints", JOB_ID), ("list",)])
def test_control_characters_json_keeps_the_api_strings(hostile_url, command):
    proc = run(on_api(hostile_url, *command, "--json"), env={"TOGETHER_API_KEY": KEY})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "\x1b" not in text and "\x07" not in text  # strict JSON escapes C0 controls
    data = json.loads(text)
    strings = json.dumps(data, ensure_ascii=False)
    assert HOSTILE in {v for item in (data if isinstance(data, list) else [data]) for v in item.values()}, strings


@pytest.mark.parametrize("command", [("retrieve", JOB_ID), ("events", JOB_ID), ("list",)])
def test_control_characters_json_on_a_terminal_are_escapes_of_the_same_strings(hostile_url, command):
    """Indented ``--json`` for a person: the C1 CSI and the bidi override a server sent are written
    as JSON escapes, so the terminal shows them instead of obeying them; the value is the API's."""
    proc = run(on_api(hostile_url, *command, "--json"), env={"TOGETHER_API_KEY": KEY, "FTCTL_FORCE_TTY": "200"})
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert text.startswith(("{\n  ", "[\n  "))  # the terminal's indented form
    for raw in RAW:
        assert raw not in text, raw
    assert "\\u009b31m\\u202eright" in text
    data = json.loads(text)
    assert HOSTILE in {v for item in (data if isinstance(data, list) else [data]) for v in item.values()}


def test_control_characters_json_error_object(hostile_url):
    proc = run(on_api(hostile_url, "retrieve", BAD_ID, "--json"), env={"TOGETHER_API_KEY": KEY})
    assert proc.returncode == 1
    error = json.loads(proc.stderr.decode().strip().splitlines()[-1])["error"]
    assert "evil\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eright" in error["message"]  # unchanged, JSON-escaped


# -- encodings ---------------------------------------------------------------------------------------

ENCODINGS = {"C": {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": ""},
             "latin-1": {"PYTHONIOENCODING": "latin-1"}, "ascii": {"PYTHONIOENCODING": "ascii"},
             "ascii-strict": {"PYTHONIOENCODING": "ascii:strict", "LC_ALL": "C", "PYTHONUTF8": "0"}}


@pytest.fixture(scope="module")
def sim_job(tmp_path_factory):
    """A finished simulated job that early-stopped, in a home shared by the module's processes."""
    home = tmp_path_factory.mktemp("enc-home")
    scenario = home / "s.json"
    scenario.write_text(json.dumps({"eval_loss": [2.0, 1.5, 1.2, 0.42, 0.45, 0.47, 0.4, 0.39, 0.38, 0.37]}))
    env = {"FTCTL_HOME": str(home), "FTCTL_SIM_SPEED": "inf"}
    proc = run(["create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B", "--n-evals", "10",
                "--early-stopping", "--sim-scenario", scenario, "-q"], env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip(), env


ENC_COMMANDS = [("list",), ("retrieve", "{id}"), ("metrics", "{id}"), ("wait", "{id}"), ("events", "{id}"),
                ("checkpoints", "{id}"), ("explain", "{id}"), ("explain", "{id}", "--patience", "1,2,3"),
                ("--help",)]


@pytest.mark.parametrize("where", ["pipe", "terminal"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("command", ENC_COMMANDS, ids=[" ".join(c)[:16] for c in ENC_COMMANDS])
def test_encoding_every_command_prints_in_a_non_utf8_environment(sim_job, command, encoding, where):
    job_id, env = sim_job
    env = {**env, **ENCODINGS[encoding], **({"FTCTL_FORCE_TTY": "100"} if where == "terminal" else {})}
    proc = run([a.format(id=job_id) for a in command], env=env)
    err = proc.stderr.decode("latin-1")
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "internal error" not in err and "PYTHONIOENCODING" not in err
    assert proc.stdout.strip()
    if encoding.startswith("ascii"):
        proc.stdout.decode("ascii")  # every byte is ASCII: what could not be encoded is escaped
        if command[0] == "metrics":
            assert b"\\u2605" not in proc.stdout and b"* best" in proc.stdout  # the ASCII glyph set, not escapes


# -- closed, full and broken streams -----------------------------------------------------------------

STREAM_COMMANDS = [("list",), ("list", "--json"), ("retrieve", "{id}"), ("metrics", "{id}"), ("wait", "{id}"),
                   ("events", "{id}"), ("checkpoints", "{id}"), ("explain", "{id}"), ("--version",), ("--help",)]


def _close(fd: int):
    return lambda: os.close(fd)


@pytest.mark.parametrize("command", STREAM_COMMANDS, ids=[" ".join(c)[:16] for c in STREAM_COMMANDS])
def test_stream_closed_stdout_is_one_line_and_exit_1(sim_job, command):
    job_id, env = sim_job
    proc = run([a.format(id=job_id) for a in command], env=env, stdout=None, preexec_fn=_close(1))
    problems = [line for line in proc.stderr.decode().splitlines() if not line.startswith("Note:")
                and not line.startswith(job_id + "  ")]  # wait's progress lines
    assert proc.returncode == 1, problems
    assert problems == ["Error: could not write the output to stdout: it is closed"] or \
        json.loads(problems[0])["error"]["code"] == "output_error", problems


@pytest.mark.parametrize("command", STREAM_COMMANDS, ids=[" ".join(c)[:16] for c in STREAM_COMMANDS])
def test_stream_full_stdout_is_one_line_and_exit_1(sim_job, command):
    job_id, env = sim_job
    with open("/dev/full", "w") as full:
        proc = run([a.format(id=job_id) for a in command], env=env, stdout=full)
    problems = [line for line in proc.stderr.decode().splitlines() if not line.startswith("Note:")
                and not line.startswith(job_id + "  ")]  # wait's progress lines
    assert proc.returncode == 1, problems
    assert problems == ["Error: could not write the output to stdout: No space left on device"] or \
        json.loads(problems[0])["error"]["code"] == "output_error", problems


@pytest.mark.parametrize("how", ["closed", "full"])
@pytest.mark.parametrize("command", STREAM_COMMANDS, ids=[" ".join(c)[:16] for c in STREAM_COMMANDS])
def test_stream_stderr_failing_never_changes_the_outcome(sim_job, command, how):
    job_id, env = sim_job
    if how == "closed":
        proc = run([a.format(id=job_id) for a in command], env=env, stderr=None, preexec_fn=_close(2))
    else:
        with open("/dev/full", "w") as full:
            proc = run([a.format(id=job_id) for a in command], env=env, stderr=full)
    assert proc.returncode == 0
    assert proc.stdout.strip()


@pytest.mark.parametrize("command", STREAM_COMMANDS, ids=[" ".join(c)[:16] for c in STREAM_COMMANDS])
def test_stream_broken_pipe_exits_141_quietly(sim_job, command):
    job_id, env = sim_job
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before ftctl writes a byte: deterministic
    try:
        proc = run([a.format(id=job_id) for a in command], env=env, stdout=write_end)
    finally:
        os.close(write_end)
    problems = [line for line in proc.stderr.decode().splitlines() if not line.startswith("Note:")
                and not line.startswith(job_id + "  ")]
    assert proc.returncode == 141, problems
    assert problems == []


def test_stream_broken_pipe_midway_through_a_long_output(tmp_path):
    """``ftctl list | head -1`` with more rows than a pipe buffer: the same 141, nothing on stderr."""
    env = {"FTCTL_HOME": str(tmp_path), "FTCTL_SIM_SPEED": "inf"}
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"metrics": [{"train/global_step": i, "eval/loss": 1.0 / i} for i in range(1, 20000)]}))
    proc = subprocess.Popen([sys.executable, "-m", "ftctl", "metrics", "--from-file", str(big), "--all-evaluations"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_stream_closed_stdout_does_not_lend_its_descriptor_to_the_state_file(sim_job):
    """With fd 1 closed, the next file opened would get descriptor 1; ftctl holds it on /dev/null,
    so jobs.json is never written through "stdout" (it stays valid JSON)."""
    job_id, env = sim_job
    run(["list"], env=env, stdout=None, preexec_fn=_close(1))
    data = json.loads((Path(env["FTCTL_HOME"]) / "jobs.json").read_text())
    assert job_id in {j["id"] for j in data["jobs"]}


# -- signals during a live wait on a terminal --------------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_during_a_live_wait_restores_the_cursor(tmp_path, sig, code):
    import pty

    env = {**os.environ, "FTCTL_HOME": str(tmp_path), "FTCTL_SIM_SPEED": "0.5", "FTCTL_FORCE_TTY": "100",
           "TERM": "xterm", "NO_COLOR": "1"}
    job_id = subprocess.run([sys.executable, "-m", "ftctl", "create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B",
                             "--n-evals", "4", "-q"], capture_output=True, text=True, env=env).stdout.strip()
    assert job_id
    pid, fd = pty.fork()
    if pid == 0:  # the child: ftctl wait on the pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-m", "ftctl", "wait", job_id, "--interval", "0.2"], env)
    output = bytearray()

    def drain(until: bytes | None, limit: float) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and (until is None or until not in output):
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    return
                if not chunk:
                    return
                output.extend(chunk)

    try:
        drain(b"\x1b[?25l", 30)  # the live view is up: the cursor is hidden
        assert b"\x1b[?25l" in output, bytes(output)
        drain(None, 0.5)
        mark = len(output)
        os.kill(pid, sig)
        drain(b"still", 30)
        drain(None, 0.5)
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(fd)
    after = bytes(output[mark:])
    assert b"\x1b[?25h" in after, after  # the cursor is shown again
    assert os.waitstatus_to_exitcode(status) == code
    assert b"was not cancelled" in after and b"Traceback" not in after
    status_now = json.loads(run(["retrieve", job_id, "--json"], env=env).stdout)["status"]
    assert status_now in ("pending", "queued", "running")
