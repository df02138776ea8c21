"""Issue 13: a completed job's model on disk. ``ftctl download`` (the simulator in-process and over
HTTP), ``sim serve``'s ``GET /v1/finetune/download`` as the vendor's ``tg`` uses it, resumes, and
the archive itself (a real .tar.zst whose manifest names the step)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
import zstandard

from served import TOKEN, WORKED, on_the_api

BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B"]
# Five checkpoints over 120 steps: saves at 24, 48 and 72 before the halt (step 24 is downloadable).
WORKED_ARGS = ["--n-epochs", "5", "--n-evals", "10", "--n-checkpoints", "5", "--early-stopping"]


def members(path: Path) -> dict[str, bytes]:
    """The archive's files, through a real zstd decoder and tarfile."""
    with open(path, "rb") as f:
        tar_bytes = zstandard.ZstdDecompressor().stream_reader(f).read()
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def manifest(path: Path) -> dict:
    return json.loads(members(path)["manifest.json"])


@pytest.fixture
def out(tmp_path) -> Path:
    """An empty directory to download into (tmp_path also holds FTCTL_HOME and scenario files)."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def worked(ftctl, scenario_file) -> str:
    result = ftctl(*BASE, *WORKED_ARGS, "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24), "-q")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# -- ftctl download on the embedded simulator ---------------------------------------------------------


def test_default_is_the_checkpoint_early_stopping_promoted(ftctl, worked, out, monkeypatch):
    monkeypatch.chdir(out)
    result = ftctl("download", worked)
    assert result.exit_code == 0, result.stderr
    saved = Path(result.stdout.strip())
    assert result.stdout == f"{saved}\n" and saved.is_absolute() and saved.parent == out
    assert saved.name.endswith(".tar.zst") and "checkpoint" not in saved.name
    (why,) = result.problems  # one line: which step, and why
    assert why.startswith("Downloading step 48:") and "early stopping" in why and "step 72" in why
    m = manifest(saved)
    assert (m["job_id"], m["step"], m["checkpoint_type"], m["base_model"], m["final"]) == \
           (worked, 48, "merged", "Qwen/Qwen3.5-9B", True)
    assert m["early_stopping"] == {"early_stopping_enabled": True, "early_stopping_patience": 2,
                                   "early_stopping_min_delta": 0.0, "early_stopping_warmup_evals": 1,
                                   "early_stopped": True, "early_stopping_best_step": 48,
                                   "early_stopping_best_metric": 0.4213}
    files = members(saved)
    assert {"config.json", "model.safetensors"} <= set(files) and "adapter_config.json" not in files
    assert list(out.iterdir()) == [saved]  # no part file or sidecar left


def test_an_explicit_step_and_the_adapter(ftctl, worked, tmp_path):
    result = ftctl("download", f"{worked}:24", "-o", tmp_path, "--checkpoint-type", "adapter", "--json")
    assert result.exit_code == 0, result.stderr
    out = result.json()
    saved = Path(out["filename"])
    assert saved.parent == tmp_path and saved.name.endswith("-checkpoint-24-adapter.tar.zst")
    assert (out["id"], out["checkpoint_step"], out["checkpoint_type"], out["size"]) == \
           (worked, 24, "adapter", saved.stat().st_size)
    m = manifest(saved)
    assert (m["step"], m["checkpoint_type"], m["final"]) == (24, "adapter", False)
    config = json.loads(members(saved)["adapter_config.json"])
    assert (config["peft_type"], config["r"], config["base_model_name_or_path"]) == ("LORA", 16, "Qwen/Qwen3.5-9B")


def test_an_unknown_step_is_exit_6_and_names_the_saved_ones(ftctl, worked, out):
    result = ftctl("download", f"{worked}:25", "-o", out)
    assert result.exit_code == 6
    assert result.problems == [f"Error: job {worked} has no checkpoint at step 25 (its checkpoints: 24, 48, 72)"]
    assert list(out.iterdir()) == []


def test_an_unknown_job_is_exit_6(ftctl, tmp_path):
    result = ftctl("download", "ft-00000000-0000-0000-0000-000000000000", "-o", tmp_path)
    assert result.exit_code == 6 and "no fine-tuning job" in result.stderr


def test_a_running_job_is_exit_3_and_a_failed_one_exit_5(ftctl, out):
    slow = {"FTCTL_SIM_SPEED": "0.5"}
    running = ftctl(*BASE, "--n-epochs", "50", "-q", env=slow).stdout.strip()
    result = ftctl("download", running, "-o", out)
    assert result.exit_code == 3
    assert len(result.problems) == 1 and "has completed" in result.problems[0] and running in result.problems[0]
    failed = ftctl(*BASE, "--n-evals", "4", "--sim-scenario", "error", "-q").stdout.strip()
    assert ftctl("retrieve", failed, "--json").json()["status"] == "error"
    result = ftctl("download", failed, "-o", out)
    assert result.exit_code == 5 and "ended error" in result.stderr
    assert list(out.iterdir()) == []


def test_an_existing_file_is_kept_without_force(ftctl, worked, tmp_path):
    target = tmp_path / "model.tar.zst"
    target.write_text("mine")
    result = ftctl("download", worked, "-o", target)
    assert result.exit_code == 2 and "already exists; pass --force" in result.stderr
    assert target.read_text() == "mine"
    forced = ftctl("download", worked, "-o", target, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert manifest(target)["step"] == 48


def test_bad_input_is_exit_2_before_anything_is_fetched(ftctl, worked, tmp_path):
    assert ftctl("download", worked, "-c", "lora", "-o", tmp_path).exit_code == 2
    missing = ftctl("download", worked, "-o", tmp_path / "nope" / "x.tar.zst")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_a_part_file_is_resumed_only_when_its_sidecar_matches(ftctl, worked, tmp_path):
    """An interrupted run leaves .NAME.part and its sidecar; the next run continues from there."""
    whole = tmp_path / "whole.tar.zst"
    assert ftctl("download", worked, "-o", whole).exit_code == 0
    data = whole.read_bytes()
    target = tmp_path / "again.tar.zst"
    part, sidecar = tmp_path / ".again.tar.zst.part", tmp_path / ".again.tar.zst.part.json"
    part.write_bytes(data[:1000])
    sidecar.write_text(json.dumps({"job_id": worked, "step": None, "checkpoint": "merged", "backend": "sim",
                                   "total": len(data)}))
    result = ftctl("download", worked, "-o", target)
    assert result.exit_code == 0, result.stderr
    assert f"Resumed at byte 1000 of {len(data)}." in result.stderr
    assert target.read_bytes() == data and not part.exists() and not sidecar.exists()
    # another archive's part file (a different step) is started over, not continued
    part.write_bytes(b"x" * 1000)
    sidecar.write_text(json.dumps({"job_id": worked, "step": 24, "checkpoint": "merged", "backend": "sim",
                                   "total": len(data)}))
    result = ftctl("download", worked, "-o", target, "--force")
    assert result.exit_code == 0 and "Resumed" not in result.stderr
    assert target.read_bytes() == data


def test_a_large_archive_streams_at_constant_memory(ftctl, worked, tmp_path, monkeypatch, ftctl_home):
    """64 MiB through the core at a peak of a few hundred KiB: never the whole archive in memory."""
    from ftctl.backends.simulator.backend import Simulator
    from ftctl import download

    monkeypatch.setenv("FTCTL_SIM_ARCHIVE_BYTES", str(64 * 1024 * 1024))
    sim = Simulator(ftctl_home, speed=float("inf"))
    try:
        choice = download.choose(sim, worked, None)
        tracemalloc.start()
        try:
            fetched = download.fetch(sim, choice, tmp_path / "big.tar.zst")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        sim.close()
    assert fetched.size > 64 * 1024 * 1024 - 100_000
    assert peak < 4 * 1024 * 1024, peak
    assert manifest(fetched.path)["step"] == 48


def test_the_archive_answers_any_range_with_the_same_bytes(ftctl, worked, ftctl_home):
    from ftctl.backends.simulator.archive import read_all
    from ftctl.backends.simulator.backend import Simulator

    sim = Simulator(ftctl_home, speed=float("inf"))
    try:
        built, name = sim.archive(worked, step=None, checkpoint="merged")
        again, _ = sim.archive(worked, step=None, checkpoint="merged")
    finally:
        sim.close()
    data = read_all(built)
    assert len(data) == built.size and data == read_all(again)  # deterministic, size known up front
    assert data[:4] == b"\x28\xb5\x2f\xfd"  # zstd
    for start, end in [(0, 2), (0, 14), (13, 20), (14, 17), (131_085, 131_100), (built.size - 5, built.size),
                       (1000, 500_000)]:
        assert b"".join(built.read(start, end)) == data[start:end]


# -- over HTTP: sim serve, ftctl's httpx backend and the vendor's tg -----------------------------------


def finished(url: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{url}/v1/fine-tunes/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        if job["status"] in ("completed", "error", "user_error", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


@pytest.fixture
def served_job(srv, ftctl):
    api = on_the_api(ftctl, srv.url, "served-key")
    made = api(*BASE, *WORKED_ARGS, "-q")
    assert made.exit_code == 0, made.stderr
    job_id = made.stdout.strip()
    assert finished(srv.url, job_id)["early_stopping_best_step"] == 48
    return job_id


def test_served_download_speaks_ranges_like_the_api(srv, served_job):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{srv.url}/v1/finetune/download?ft_id={served_job}&checkpoint=merged"
    probe = httpx.get(url, headers={**headers, "Range": "bytes=0-1"})
    assert probe.status_code == 206 and probe.content == b"\x28\xb5"
    total = int(probe.headers["content-range"].split("/")[1])
    assert probe.headers["content-range"] == f"bytes 0-1/{total}"
    assert probe.headers["content-type"] == "application/octet-stream"
    assert probe.headers["content-disposition"].startswith("attachment; filename=")
    full = httpx.get(url, headers=headers)
    assert full.status_code == 200 and len(full.content) == total == int(full.headers["content-length"])
    tail = httpx.get(url, headers={**headers, "Range": "bytes=1000-"})
    assert tail.status_code == 206 and tail.content == full.content[1000:]
    assert httpx.get(url, headers={**headers, "Range": f"bytes={total}-"}).status_code == 416
    errors = {
        "ft_id=ft-00000000-0000-0000-0000-000000000000&checkpoint=merged": 404,
        f"ft_id={served_job}&checkpoint=merged&checkpoint_step=25": 404,
        f"ft_id={served_job}": 400,
        f"ft_id={served_job}&checkpoint=lora": 400,
    }
    for query, status in errors.items():
        answer = httpx.get(f"{srv.url}/v1/finetune/download?{query}", headers=headers)
        assert answer.status_code == status, query
        assert answer.json()["error"]["type"] and answer.json()["error"]["message"]


def test_ftctl_downloads_over_http_and_resumes_a_dropped_stream(srv, served_job, ftctl, tmp_path):
    api = on_the_api(ftctl, srv.url, "served-key", FTCTL_RETRY_DELAY="0")
    first = api("download", served_job, "-o", tmp_path / "a.tar.zst")
    assert first.exit_code == 0, first.stderr
    data = (tmp_path / "a.tar.zst").read_bytes()
    assert manifest(tmp_path / "a.tar.zst")["step"] == 48
    # dropped mid-body: resumed in the same run with a range request
    srv.inject(kind="dropped", path="/v1/finetune/download")
    second = api("download", served_job, "-o", tmp_path / "b.tar.zst")
    assert second.exit_code == 0, second.stderr
    assert (tmp_path / "b.tar.zst").read_bytes() == data
    log = srv.logged("fault dropped")
    downloads = [line for line in log.splitlines() if "/v1/finetune/download" in line]
    assert "(fault dropped" in downloads[-2] and " 206 " in downloads[-1]
    # no retries left: the part file stays, and the next run resumes it
    srv.inject(kind="dropped", path="/v1/finetune/download")
    broken = api("download", served_job, "-o", tmp_path / "c.tar.zst", env={"FTCTL_MAX_RETRIES": "0"})
    assert broken.exit_code == 1 and "run the same command again to resume" in broken.stderr
    kept = (tmp_path / ".c.tar.zst.part").stat().st_size
    assert 0 < kept < len(data) and not (tmp_path / "c.tar.zst").exists()
    resumed = api("download", served_job, "-o", tmp_path / "c.tar.zst")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"Resumed at byte {kept} of {len(data)}." in resumed.stderr
    assert (tmp_path / "c.tar.zst").read_bytes() == data
    unknown = api("download", f"{served_job}:25", "-o", tmp_path)
    assert unknown.exit_code == 6 and "no checkpoint at step 25" in unknown.stderr


@pytest.fixture
def tg(srv, tmp_path):
    """The vendor's ``tg`` CLI, run as a user runs it, in ``tmp_path``."""
    exe = str(Path(sys.executable).with_name("tg"))
    env = {**os.environ, "TOGETHER_API_KEY": "tg-test-key", "TOGETHER_BASE_URL": srv.url, "HOME": str(tmp_path),
           "COLUMNS": "120", "NO_COLOR": "1", "TOGETHER_TELEMETRY_DISABLED": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                              stdin=subprocess.DEVNULL, timeout=120)

    return run


def test_the_vendor_cli_downloads_the_promoted_step(tg, served_job, tmp_path):
    result = tg("--json", "ft", "download", served_job)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    saved = Path(out["filename"])
    assert saved.name.endswith(".tar.zst") and saved.stat().st_size == out["size"]
    m = manifest(saved)
    assert (m["job_id"], m["step"], m["checkpoint_type"]) == (served_job, 48, "merged")

    step = tg("ft", "download", f"{served_job}:24", "-o", str(tmp_path / "step.tar.zst"))
    assert step.returncode == 0, step.stdout + step.stderr
    assert manifest(tmp_path / "step.tar.zst")["step"] == 24

    adapter = tg("ft", "download", served_job, "--checkpoint-type", "adapter", "-o", str(tmp_path / "ad.tar.zst"))
    assert adapter.returncode == 0, adapter.stdout + adapter.stderr
    files = members(tmp_path / "ad.tar.zst")
    assert "adapter_config.json" in files and "adapter_model.safetensors" in files
    assert json.loads(files["manifest.json"])["checkpoint_type"] == "adapter"
