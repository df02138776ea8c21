"""Issue 4: ``ftctl sim serve`` as a real process on loopback, and ftctl's httpx backend
(``--backend together --base-url``) against it: the same answers as the in-process simulator,
retries, every error path and its exit code, and the key kept out of everything."""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
import uuid

import httpx
import pytest

from served import TOKEN, on_the_api, served
from kit import MODEL

CREATE = ["create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B", "--n-epochs", "5",
          "--n-evals", "10", "--early-stopping", "--patience", "2", "--random-seed", "11"]
KEY = f"tgk-{uuid.uuid4().hex}"  # a fake key that must never show up anywhere
FAST = {"FTCTL_RETRY_DELAY": "0.01"}  # backoff without Retry-After: 10 ms, 20 ms, ...


@pytest.fixture
def api(ftctl, srv):
    """ftctl on the together backend, pointed at the served simulator."""
    return on_the_api(ftctl, srv.url, KEY, **FAST)


def follow(api, job_id: str, timeout: float = 30) -> dict:
    """Poll ``retrieve`` until the job ends (``wait`` is proven once, in the first test)."""
    deadline = time.monotonic() + timeout
    while True:
        job = api("retrieve", job_id, "--json").json()
        if job["status"] in ("completed", "error", "user_error", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _without_ids(value, job_id: str):
    return json.loads(json.dumps(value).replace(job_id, "ID"))


# -- the same simulator, over HTTP ------------------------------------------------------------------


def test_an_early_stopping_job_over_http_matches_the_in_process_simulator(api, ftctl, srv):
    created = api(*CREATE, "--json")
    assert created.exit_code == 0, created.stderr
    job_id = created.json()["id"]
    waited = api("wait", job_id, "--interval", "0.1", "--timeout", "60", "--json")
    assert waited.exit_code == 0, waited.stderr
    assert waited.json()["status"] == "completed"
    served_job = api("retrieve", job_id, "--json").json()
    assert (served_job["status"], served_job["early_stopped"], served_job["early_stopping_best_step"],
            served_job["early_stopping_best_metric"], served_job["steps_completed"]) == (
        "completed", True, 48, 0.4213, 72)

    local_id = ftctl(*CREATE, "--sim-scenario", str(srv.scenario), "-q", "--backend", "sim",
                     env={"FTCTL_SIM_SPEED": "inf"}).stdout.strip()
    local_job = ftctl("retrieve", local_id, "--json", "--backend", "sim").json()
    volatile = {"id", "created_at", "updated_at", "started_at", "model_output_name", "events"}
    assert set(served_job) == set(local_job)
    assert {k: v for k, v in served_job.items() if k not in volatile} == \
           {k: v for k, v in local_job.items() if k not in volatile}

    def same(command: str, *, drop: tuple[str, ...] = ()):
        there = api(command, job_id, "--json")
        here = ftctl(command, local_id, "--json", "--backend", "sim")
        assert there.exit_code == here.exit_code == 0, there.stderr + here.stderr
        strip = (lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]) if drop else (
            lambda doc: doc)
        assert _without_ids(strip(there.json()), job_id) == _without_ids(strip(here.json()), local_id)

    same("events", drop=("created_at",))
    same("checkpoints", drop=("created_at",))
    metrics = api("metrics", job_id, "--json").json()
    local_metrics = ftctl("metrics", local_id, "--json", "--backend", "sim").json()
    assert {**metrics, "job_id": None} == {**local_metrics, "job_id": None}
    assert metrics["early_stopping"]["fired"] is True and metrics["early_stopping"]["best_step"] == 48
    raw = api("metrics", job_id, "--raw").json()["metrics"]
    local_raw = ftctl("metrics", local_id, "--raw", "--backend", "sim").json()["metrics"]
    assert [{k: v for k, v in r.items() if k != "timestamp"} for r in raw] == \
           [{k: v for k, v in r.items() if k != "timestamp"} for r in local_raw]


def test_the_job_list_and_cancel_over_http(api):
    job_id = api(*CREATE, "--n-epochs", "200", "-q").stdout.strip()  # 4800 steps: still running
    listed = api("list", "--json").json()
    assert job_id in [j["id"] for j in listed]
    cancelled = api("cancel", job_id, "--yes", "--json")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.json()["status"] in ("cancel_requested", "cancelled")
    waited = api("wait", job_id, "--interval", "0.1", "--timeout", "60", "--json")
    assert waited.exit_code == 5 and waited.json()["status"] == "cancelled"


def test_metrics_filters_reach_the_server(api, srv):
    job_id = api(*CREATE, "-q").stdout.strip()
    follow(api, job_id)
    rows = api("metrics", job_id, "--raw", "--global-step-from", "40", "--global-step-to", "60").json()["metrics"]
    assert rows and all(40 <= r["train/global_step"] <= 60 for r in rows)
    assert "global_step_from=40&global_step_to=60" in srv.logged("global_step_from=40")


def test_a_scenario_header_chooses_the_curve_and_non_finite_values_travel_as_strict_json(api, srv):
    headers = {"Authorization": f"Bearer {TOKEN}",
               "X-Ftctl-Sim-Scenario": json.dumps({"eval_loss": [2.0, 1.8, "NaN", 1.0, 0.9]})}
    body = {"training_file": "file-train", "validation_file": "file-val", "model": MODEL, "n_evals": 5,
            "early_stopping_enabled": True}
    job = httpx.post(srv.url + "/v1/fine-tunes", json=body, headers=headers).json()
    follow(api, job["id"])
    text = httpx.get(f"{srv.url}/v1/fine-tunes/{job['id']}/metrics", headers=headers).text
    rows = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in the served JSON"))
    assert "NaN" in [r.get("eval/loss") for r in rows["metrics"]]
    explained = api("metrics", job["id"], "--json").json()["early_stopping"]
    assert explained["fired"] is True and explained["halt_eval"] == 3
    bad = httpx.post(srv.url + "/v1/fine-tunes", json=body, headers={**headers, "X-Ftctl-Sim-Scenario": "nope"})
    assert bad.status_code == 400 and "unknown scenario 'nope'" in bad.json()["error"]["message"]


# -- what the server demands and says ---------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer", "Basic abc", "token"])
def test_a_request_without_a_bearer_token_is_401_with_the_error_envelope(srv, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(srv.url + "/v1/fine-tunes", headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "Bearer" in error["message"]


def test_the_access_log_has_one_line_per_request_and_never_the_token(srv):
    secret = f"sekrit-{uuid.uuid4().hex}"
    before = len(srv.log())
    httpx.get(srv.url + "/v1/fine-tunes", headers={"Authorization": f"Bearer {secret}"})
    httpx.get(srv.url + "/v1/fine-tunes/ft-nope", headers={"Authorization": f"Bearer {secret}"})
    lines = srv.logged("GET /v1/fine-tunes/ft-nope 404", since=before).splitlines()
    assert [line.split()[1:4] for line in lines[-2:]] == [["GET", "/v1/fine-tunes", "200"],
                                                          ["GET", "/v1/fine-tunes/ft-nope", "404"]]
    assert secret not in srv.log()


def test_unknown_endpoints_and_bad_faults_answer_with_the_envelope(srv):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    missing = httpx.get(srv.url + "/v1/nothing", headers=auth)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "no such endpoint: GET /v1/nothing"
    wrong = httpx.delete(srv.url + "/v1/fine-tunes", headers=auth)
    assert wrong.status_code == 405 and "error" in wrong.json()
    bad = httpx.post(srv.url + "/_sim/faults", json={"kind": "status", "status": 200}, headers=auth)
    assert bad.status_code == 400 and "error status >= 400" in bad.json()["error"]["message"]
    assert srv.pending() == []


# -- retries and errors, through ftctl ----------------------------------------------------------------


def test_429_with_retry_after_is_retried_and_succeeds(api, srv):
    srv.inject(kind="status", status=429, retry_after="0.05", count=2, path="/v1/fine-tunes")
    result = api("list", "--json", "--debug")
    assert result.exit_code == 0, result.stderr
    assert isinstance(result.json(), list)
    assert result.stderr.count("* HTTP 429; retrying in 0.05 s") == 2  # the server's wait, not the backoff
    assert srv.pending() == []
    assert "(retry 2)" in srv.logged("(retry 2)")


def test_500_exhausting_retries_exits_1_with_the_servers_message(api, srv):
    srv.inject(kind="status", status=500, message="the trainer is on fire", count=5)
    result = api("list")
    assert result.exit_code == 1
    assert result.stderr == ("Error: the trainer is on fire (HTTP 500 from GET /v1/fine-tunes, "
                             "after 3 attempts)\n")
    assert srv.pending()[0]["count"] == 2  # exactly 1 + FTCTL_MAX_RETRIES (2) requests were made


def test_the_retry_count_is_configurable(api, srv):
    srv.inject(kind="status", status=503, count=5)
    result = api("list", env={"FTCTL_MAX_RETRIES": "0"})
    assert result.exit_code == 1 and "after" not in result.stderr
    assert srv.pending()[0]["count"] == 4


def test_a_rejected_key_exits_4_and_is_not_retried(api, srv):
    srv.inject(kind="status", status=401, message="Invalid API key provided", count=3)
    result = api("list")
    assert result.exit_code == 4
    assert result.stderr == ("Error: the API rejected the key: Invalid API key provided (HTTP 401 from "
                             "GET /v1/fine-tunes) (check TOGETHER_API_KEY)\n")
    assert srv.pending()[0]["count"] == 2


def test_an_unknown_job_exits_6_with_the_servers_message(api):
    result = api("retrieve", "ft-00000000-0000-0000-0000-000000000000")
    assert result.exit_code == 6
    assert result.stderr.startswith("Error: no fine-tuning job with id 'ft-00000000-0000-0000-0000-000000000000'")
    assert "(HTTP 404 from GET /v1/fine-tunes/ft-00000000-0000-0000-0000-000000000000)" in result.stderr


@pytest.mark.parametrize("fault, message", [
    ({"kind": "malformed"}, "Error: the API's response to GET /v1/fine-tunes is not valid JSON (HTTP 200, "),
    ({"kind": "truncated"}, "Error: the API's response to GET /v1/fine-tunes is not valid JSON (HTTP 200, "),
    ({"kind": "empty"}, "Error: the API sent an empty response to GET /v1/fine-tunes (HTTP 200); expected JSON"),
    ({"kind": "html", "count": 3}, "Error: Bad Gateway; the body was an HTML page ('502 Bad Gateway'), not JSON "
                                   "(HTTP 502 from GET /v1/fine-tunes, after 3 attempts)"),
])
def test_a_malformed_response_exits_1_with_a_clear_message(api, srv, fault, message):
    srv.inject(**fault)
    result = api("list")
    assert result.exit_code == 1
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_errors_are_json_on_stderr_under_json(api, srv):
    srv.inject(kind="status", status=500, message="down for maintenance", count=3)
    result = api("list", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["message"].startswith("down for maintenance") and error["exit_code"] == 1


def test_a_slow_response_times_out_and_is_retried(api, srv):
    srv.inject(kind="slow", delay=5, path="/v1/fine-tunes")
    result = api("list", "--json", "--debug", env={"FTCTL_READ_TIMEOUT": "1"})
    assert result.exit_code == 0, result.stderr
    assert "* read timeout" in result.stderr


def test_create_is_not_retried_after_a_read_timeout(api, srv):
    srv.inject(kind="slow", delay=5, path="/v1/fine-tunes$", method="POST")  # the create, not the estimate
    result = api(*CREATE, env={"FTCTL_READ_TIMEOUT": "1"})
    assert result.exit_code == 1
    assert "the job may have been created, check 'ftctl list' before trying again" in result.stderr


def test_an_unreachable_server_exits_1_after_retries(ftctl):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = ftctl("list", "--backend", "together", "--base-url", f"http://127.0.0.1:{port}",
                   env={"TOGETHER_API_KEY": KEY, **FAST})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: cannot reach the API at http://127.0.0.1:{port}: ")
    assert result.stderr.rstrip().endswith("(after 3 attempts)")


# -- the key ----------------------------------------------------------------------------------------


def test_the_key_never_appears_in_any_output_trace_log_or_file(api, srv, ftctl_home):
    outputs = []

    def run(*args, env=None):
        result = api(*args, "--debug", env={"WANDB_API_KEY": "wandb-" + KEY, **(env or {})})
        outputs.append(result.stdout + result.stderr)
        return result

    job_id = run(*CREATE, "--wandb-project-name", "p", "--json").json()["id"]
    for command in ("retrieve", "events", "checkpoints", "metrics"):
        assert run(command, job_id).exit_code == 0
    run("list")
    run("cancel", job_id, "--yes")
    run("retrieve", "ft-unknown")
    srv.inject(kind="status", status=401, message=f"key {KEY} is not valid")  # a server that echoes it
    assert run("list").exit_code == 4
    srv.inject(kind="status", status=500, count=3)
    run("list")
    srv.inject(kind="malformed")
    run("list")
    everything = "".join(outputs)
    assert "Bearer ****" in everything and "> GET " in everything and "< 200 OK" in everything
    assert '"wandb_key":"****"' in everything
    files = [p.read_bytes() for p in ftctl_home.rglob("*") if p.is_file()]
    assert files, "ftctl wrote its local state"
    for blob in [everything.encode(), srv.logged("fault malformed").encode(), *files]:
        assert KEY.encode() not in blob


def test_a_missing_key_on_the_together_backend_exits_4_with_how_to_set_it(ftctl, srv):
    result = ftctl("list", "--backend", "together", "--base-url", srv.url)
    assert result.exit_code == 4
    assert "TOGETHER_API_KEY is not set: export TOGETHER_API_KEY=" in result.stderr
    assert "--backend sim" in result.stderr


def test_the_key_is_not_sent_over_plain_http_to_another_host(ftctl):
    env = {"TOGETHER_API_KEY": KEY, **FAST, "FTCTL_MAX_RETRIES": "0", "FTCTL_CONNECT_TIMEOUT": "0.2"}
    refused = ftctl("list", "--backend", "together", "--base-url", "http://192.0.2.1", env=env)
    assert refused.exit_code == 2
    assert refused.stderr == ("Error: refusing to send TOGETHER_API_KEY over plain http to 192.0.2.1: use "
                              "https, or set FTCTL_ALLOW_INSECURE_HTTP=1 if this host is trusted\n")
    allowed = ftctl("list", "--backend", "together", "--base-url", "http://192.0.2.1",
                    env={**env, "FTCTL_ALLOW_INSECURE_HTTP": "1"})
    assert allowed.exit_code == 1 and "cannot reach the API at http://192.0.2.1" in allowed.stderr


@pytest.mark.parametrize("name, value, message", [
    ("FTCTL_MAX_RETRIES", "lots", "FTCTL_MAX_RETRIES must be a whole number >= 0 (got 'lots')"),
    ("FTCTL_READ_TIMEOUT", "0", "FTCTL_READ_TIMEOUT must be a number of seconds > 0 (got '0')"),
    ("TOGETHER_BASE_URL", "ftp://x", "--base-url / TOGETHER_BASE_URL must be an http(s) URL with a host"),
])
def test_bad_connection_settings_exit_2(ftctl, name, value, message):
    result = ftctl("list", "--backend", "together", env={"TOGETHER_API_KEY": KEY, name: value})
    assert result.exit_code == 2
    assert message in result.stderr and KEY not in result.stderr


# -- running the server -------------------------------------------------------------------------------


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_serve_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path, sig, code):
    with served(tmp_path / "home", args=()) as s:
        assert s.url.startswith("http://127.0.0.1:") and int(s.url.rsplit(":", 1)[1]) > 0
        assert httpx.get(s.url + "/v1/fine-tunes", headers={"Authorization": "Bearer x"}).status_code == 200
        assert s.stop(sig) == code
        log = s.log()
    assert log.rstrip().endswith("Stopped.") and "Traceback" not in log
    assert f"Serving the simulator at {s.url}" in log


def test_serve_shares_the_store_with_the_in_process_simulator(tmp_path, ftctl, monkeypatch):
    home = tmp_path / "shared"
    monkeypatch.setenv("FTCTL_HOME", str(home))
    job_id = ftctl("create", "-t", "file-train", "-m", MODEL, "-q", "--backend", "sim").stdout.strip()
    with served(home, args=()) as s:
        served_job = httpx.get(f"{s.url}/v1/fine-tunes/{job_id}", headers={"Authorization": "Bearer x"}).json()
    assert served_job["id"] == job_id and served_job["status"] == "completed"


def test_serve_on_a_busy_port_is_one_line(ftctl_proc):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = ftctl_proc("sim", "serve", "--port", str(busy.getsockname()[1]))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot listen on 127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_serve_without_the_extra_names_it(ftctl, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = ftctl("sim", "serve")
    assert result.exit_code == 1
    assert result.stderr == ("Error: ftctl sim serve needs the 'serve' extra (uvicorn is missing): "
                             "pip install 'ftctl[serve]'\n")
