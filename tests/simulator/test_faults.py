"""Issue 7: faults between ftctl and the API. Connection refused, an unresolvable host, read
timeouts, 429 storms, 5xx bursts and connections dropped mid-body: ftctl retries within its bound
(``FTCTL_MAX_RETRIES``, default 2: three attempts), succeeds when the fault passes in time, and
otherwise ends with the contract's exit code and one line. ``wait`` survives failed polls and gives
up only after its own bound (``ftctl.follow.POLL_RETRIES`` failed polls in a row).

Against ``ftctl sim serve --faults`` over a real socket; every fault is consumed from the server's
queue, so the number of requests ftctl made is checked, not guessed.
"""

from __future__ import annotations

import socket
import time

import pytest

from ftctl.follow import POLL_RETRIES

from served import on_the_api
from kit import MODEL

KEY = "tgk-faults-test-key"
FAST = {"FTCTL_RETRY_DELAY": "0.01"}  # backoff 10 ms, 20 ms, ... when the server names no wait
CREATE = ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-epochs", "5", "--n-evals", "10",
          "--early-stopping"]


@pytest.fixture
def api(ftctl, srv):
    return on_the_api(ftctl, srv.url, KEY, **FAST)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr and KEY not in result.stderr
    (line,) = result.problems
    assert line.startswith("Error: ")
    return line


# -- answers that fail, then stop failing (or not) in time -------------------------------------------

# (name, fault, failures it takes to pass, the line when it does not)
PASSING = [
    ("429 storm", {"kind": "status", "status": 429, "retry_after": "0"}, "simulated fault: HTTP 429"),
    ("500 burst", {"kind": "status", "status": 500}, "simulated fault: HTTP 500"),
    ("502 burst", {"kind": "status", "status": 502}, "simulated fault: HTTP 502"),
    ("503 with retry-after-ms", {"kind": "status", "status": 503, "retry_after_ms": "5"},
     "simulated fault: HTTP 503"),
    ("HTML 504 from a proxy", {"kind": "html", "status": 504, "message": "504 Gateway Time-out"},
     "Gateway Timeout; the body was an HTML page ('504 Gateway Time-out'), not JSON"),
    ("connection dropped mid-body", {"kind": "dropped"}, "cannot reach the API at"),
]


@pytest.mark.parametrize("retries", [0, 2, 4])
@pytest.mark.parametrize("name, fault, says", PASSING, ids=[p[0] for p in PASSING])
def test_a_passing_fault_is_retried_within_the_bound(api, srv, retries, name, fault, says):
    """Up to FTCTL_MAX_RETRIES failures are survived; one more is exit 1 naming what happened."""
    env = {"FTCTL_MAX_RETRIES": str(retries)}
    srv.inject(**fault, count=retries, path="/v1/fine-tunes") if retries else None
    survived = api("list", "--json", env=env)
    assert survived.exit_code == 0, survived.stderr
    assert isinstance(survived.json(), list) and srv.pending() == []

    srv.inject(**fault, count=retries + 2, path="/v1/fine-tunes")
    failed = api("list", env=env)
    line = one_line_error(failed, 1)
    assert says in line
    if retries:
        assert f"after {retries + 1} attempts" in line
    assert srv.pending()[0]["count"] == 1  # exactly 1 + FTCTL_MAX_RETRIES requests were made
    srv.clear()


def test_a_429_storm_honours_retry_after_and_ends_with_the_servers_message(api, srv):
    srv.inject(kind="status", status=429, retry_after="0.2", count=50, message="Rate limit reached: slow down")
    started = time.monotonic()
    result = api("retrieve", "ft-anything", "--debug")
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr.count("* HTTP 429; retrying in 0.20 s") == 2
    assert result.stderr.splitlines()[-1] == ("Error: Rate limit reached: slow down (HTTP 429 from GET "
                                              "/v1/fine-tunes/ft-anything, after 3 attempts)")
    assert 0.4 <= elapsed < 5  # it waited as told, twice, and no more
    assert srv.pending()[0]["count"] == 47


def test_read_timeouts_are_retried_then_exit_1(api, srv):
    srv.inject(kind="slow", delay=1.5, count=3, path="/v1/fine-tunes/")
    started = time.monotonic()
    result = api("retrieve", "ft-slow", env={"FTCTL_READ_TIMEOUT": "0.3"})
    elapsed = time.monotonic() - started
    line = one_line_error(result, 1)
    assert line.startswith(f"Error: cannot reach the API at {srv.url}: read timeout")
    assert line.endswith("(after 3 attempts)")
    assert elapsed < 3  # three timeouts of 0.3 s and short backoffs, not three slow answers


def test_a_read_timeout_then_an_answer_succeeds(api, srv):
    job_id = api(*CREATE, "-q").stdout.strip()
    srv.inject(kind="slow", delay=1.5, path=f"/v1/fine-tunes/{job_id}")
    result = api("retrieve", job_id, "--json", env={"FTCTL_READ_TIMEOUT": "0.3"})
    assert result.exit_code == 0, result.stderr
    assert result.json()["id"] == job_id


def test_connection_refused_is_retried_then_exit_1(ftctl):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ftctl("events", "ft-1", "--backend", "together", "--base-url", f"http://127.0.0.1:{port}", "--debug",
                   env={"TOGETHER_API_KEY": KEY, **FAST, "FTCTL_MAX_RETRIES": "3"})
    assert result.exit_code == 1
    assert [f"attempt {n} of 4" in result.stderr for n in (1, 2, 3, 4)] == [True] * 4
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"Error: cannot reach the API at http://127.0.0.1:{port}: ")
    assert last.endswith("(after 4 attempts)")


def test_an_unresolvable_host_is_exit_1_naming_it(ftctl):
    # .invalid never resolves (RFC 6761)
    result = ftctl("list", "--backend", "together", "--base-url", "https://api.ftctl-test.invalid",
                   env={"TOGETHER_API_KEY": KEY, **FAST, "FTCTL_CONNECT_TIMEOUT": "2"})
    line = one_line_error(result, 1)
    assert line.startswith("Error: cannot reach the API at https://api.ftctl-test.invalid: ")
    assert line.endswith("(after 3 attempts)")


def test_a_create_whose_answer_is_dropped_says_the_job_may_exist_and_it_does(api, srv):
    before = {j["id"] for j in api("list", "--json").json()}
    srv.inject(kind="dropped", path="/v1/fine-tunes$", method="POST")
    line = one_line_error(api(*CREATE), 1)
    assert "failed after the request was sent" in line
    assert "the job may have been created, check 'ftctl list' before trying again" in line
    assert srv.pending() == []  # not sent twice: a retry could have made a second job
    after = api("list", "--json").json()
    assert len({j["id"] for j in after} - before) == 1  # the one job the server made is there, not lost


def test_a_create_refused_with_503_is_retried_and_makes_one_job(api, srv):
    before = len(api("list", "--json").json())
    srv.inject(kind="status", status=503, count=2, path="/v1/fine-tunes$", method="POST")
    made = api(*CREATE, "-q")
    assert made.exit_code == 0, made.stderr
    assert len(api("list", "--json").json()) == before + 1


# -- wait keeps waiting through failed polls -------------------------------------------------------------

POLL = ["--interval", "0.05", "--timeout", "60"]


@pytest.mark.parametrize("fault", [
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 429, "retry_after": "0"},
    {"kind": "dropped"},
    {"kind": "html"},
    {"kind": "malformed"},
    {"kind": "empty"},
], ids=["503", "429", "dropped", "html", "malformed", "empty"])
def test_wait_survives_failed_polls_and_ends_with_the_jobs_outcome(api, srv, fault):
    job_id = api(*CREATE, "-q").stdout.strip()
    # With no retries inside a request, each fault is one failed poll: the most wait tolerates.
    srv.inject(**fault, count=POLL_RETRIES, path=f"/v1/fine-tunes/{job_id}")
    result = api("wait", job_id, *POLL, "--json", env={"FTCTL_MAX_RETRIES": "0"})
    assert result.exit_code == 0, result.stderr
    assert result.json()["status"] == "completed" and result.json()["early_stopping_best_step"] == 48
    assert result.stderr.count("poll failed") == POLL_RETRIES
    assert srv.pending() == []


def test_wait_survives_bursts_longer_than_one_requests_retries(api, srv):
    job_id = api(*CREATE, "-q").stdout.strip()
    # Two whole polls fail (3 attempts each), the third gets through.
    srv.inject(kind="status", status=502, count=6, path=f"/v1/fine-tunes/{job_id}")
    result = api("wait", job_id, *POLL, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("poll failed") == 2 and srv.pending() == []


def test_wait_gives_up_after_its_bound_with_the_last_error(api, srv):
    job_id = api(*CREATE, "-q").stdout.strip()
    srv.inject(kind="status", status=503, count=100, message="maintenance", path=f"/v1/fine-tunes/{job_id}")
    result = api("wait", job_id, *POLL, env={"FTCTL_MAX_RETRIES": "0"})
    assert result.exit_code == 1
    assert result.stderr.count("poll failed") == POLL_RETRIES
    assert result.stderr.splitlines()[-1] == (f"Error: maintenance (HTTP 503 from GET /v1/fine-tunes/{job_id})")
    assert srv.pending()[0]["count"] == 100 - (POLL_RETRIES + 1)  # one request per poll, no more


def test_wait_ends_at_once_when_the_job_is_gone_or_the_key_is_refused(api, srv):
    gone = api("wait", "ft-00000000-0000-0000-0000-000000000000", *POLL)
    assert gone.exit_code == 6 and "poll failed" not in gone.stderr
    job_id = api(*CREATE, "-q").stdout.strip()
    srv.inject(kind="status", status=401, message="key revoked", count=5)
    refused = api("wait", job_id, *POLL)
    assert refused.exit_code == 4 and "poll failed" not in refused.stderr
    assert srv.pending()[0]["count"] == 4
