"""Issue 4: the vendor's own client (the together 3.1.1 SDK and its ``tg`` CLI, written by people who
are not us) against ``ftctl sim serve``: proof that the served simulator speaks Together's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import together  # a test dependency (the `test` extra): a missing SDK fails here, it is not skipped

from served import served_worked_example

TERMINAL = {"completed", "error", "user_error", "cancelled"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served_worked_example(tmp_path_factory.mktemp("served-sdk")) as s:
        yield s


@pytest.fixture
def client(server):
    server.clear()
    with together.Together(api_key="sdk-test-key", base_url=server.url, max_retries=2) as c:
        yield c


def create(client, **overrides):
    args = dict(training_file="file-train", validation_file="file-val", model="Qwen/Qwen3.5-9B", n_epochs=5,
                n_evals=10, early_stopping_enabled=True, early_stopping_patience=2, random_seed=11)
    return client.fine_tuning.create(**{**args, **overrides})


def finished(client, job_id: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.retrieve(job_id)
        if job.status in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_sdk_creates_an_early_stopping_job_and_reads_its_outcome(client, server):
    job = create(client)
    assert job.id.startswith("ft-") and job.status in ("pending", "queued", "running")
    # the SDK's create asks for the model's limits and a price estimate first
    log = server.logged("POST /v1/fine-tunes 200")
    assert "GET /v1/fine-tunes/models/limits?model_name=Qwen%2FQwen3.5-9B 200" in log
    assert "POST /v1/fine-tunes/estimate-price 200" in log

    done = finished(client, job.id)
    assert (done.status, done.early_stopped, done.early_stopping_best_step, done.early_stopping_best_metric,
            done.steps_completed, done.total_steps) == ("completed", True, 48, 0.4213, 72, 120)

    events = client.fine_tuning.list_events(job.id).data
    (stopped,) = [e for e in events if e.type == "early_stopped"]
    assert (stopped.step, stopped.early_stopping_best_step, stopped.early_stopping_best_metric_value) == (72, 48, 0.4213)
    assert [e.type for e in events if e.type == "refund"] == ["refund"]

    rows = client.fine_tuning.list_metrics(job.id).metrics
    evals = [(r["train/global_step"], r["eval/loss"]) for r in rows if "eval/loss" in r]
    assert evals == [(12, 2.0), (24, 1.5), (36, 1.2), (48, 0.4213), (60, 0.45), (72, 0.47)]
    filtered = client.fine_tuning.list_metrics(job.id, global_step_from=50, global_step_to=60).metrics
    assert filtered and all(50 <= r["train/global_step"] <= 60 for r in filtered)

    checkpoints = client.fine_tuning.list_checkpoints(job.id).data
    assert [c.step for c in checkpoints if "intermediate" not in c.checkpoint_type.lower()] == [48]

    assert job.id in [j.id for j in client.fine_tuning.list().data]


def test_sdk_sends_what_the_served_simulator_records(client):
    job = create(client, early_stopping_min_delta=0.01, early_stopping_warmup_evals=2, lora=True, lora_r=8)
    full = client.fine_tuning.retrieve(job.id)
    assert full.training_type.lora_r == 8 and full.n_evals == 10 and full.random_seed == 11


def test_sdk_cancels_a_running_job(client):
    job = create(client, n_epochs=200)  # 4800 steps: still running when the cancel arrives
    cancelled = client.fine_tuning.cancel(job.id)
    assert cancelled.status in ("cancel_requested", "cancelled")
    assert finished(client, job.id).status == "cancelled"


def test_sdk_sees_the_error_envelope(client):
    with pytest.raises(together.NotFoundError) as raised:
        client.fine_tuning.retrieve("ft-00000000-0000-0000-0000-000000000000")
    assert raised.value.status_code == 404
    assert "no fine-tuning job with id" in raised.value.body["error"]["message"]
    with pytest.raises(together.BadRequestError, match="Early stopping requires n_evals"):
        # the SDK checks this too; a raw request shows the server does as well
        client.post("/v1/fine-tunes", cast_to=object, body={
            "training_file": "f", "validation_file": "v", "model": "m", "n_evals": 2,
            "early_stopping_enabled": True})
    with pytest.raises(together.AuthenticationError):
        together.Together(api_key="x", base_url=str(client.base_url), default_headers={"Authorization": ""}) \
            .fine_tuning.list()


def test_sdk_retries_the_served_429_and_succeeds(client, server):
    server.inject(kind="status", status=429, retry_after_ms="10", count=2, path="/v1/fine-tunes")
    assert isinstance(client.fine_tuning.list().data, list)
    assert server.pending() == []


@pytest.fixture
def tg(server, tmp_path):
    """The vendor's ``tg`` CLI, as a user runs it: TOGETHER_API_KEY and TOGETHER_BASE_URL."""
    exe = str(Path(sys.executable).with_name("tg"))  # installed with the SDK, in this environment
    env = {**os.environ, "TOGETHER_API_KEY": "tg-test-key", "TOGETHER_BASE_URL": server.url,
           "HOME": str(tmp_path), "COLUMNS": "120", "NO_COLOR": "1", "TOGETHER_TELEMETRY_DISABLED": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=120)

    return run


def test_the_vendor_cli_retrieves_and_lists_events(client, tg):
    job = create(client)
    finished(client, job.id)
    retrieved = tg("ft", "retrieve", job.id)
    assert retrieved.returncode == 0, retrieved.stdout + retrieved.stderr
    assert "Early Stopping Best Step" in retrieved.stdout and "eval/loss" in retrieved.stdout
    events = tg("--json", "ft", "list-events", job.id)
    assert events.returncode == 0, events.stdout + events.stderr
    (stopped,) = [e for e in json.loads(events.stdout) if e["type"] == "early_stopped"]
    assert (stopped["step"], stopped["early_stopping_best_step"], stopped["early_stopping_best_metric_value"]) == \
           (72, 48, 0.4213)
