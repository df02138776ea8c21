"""Issue 16: the vendor's own client (together 3.1.1: ``tg`` and the SDK) uploads, dedups, lists,
retrieves, downloads and deletes files on ``ftctl sim serve``, and creates a job from local files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import together
import together.lib.resources.files as sdk_files

from served import served

MODEL = "Qwen/Qwen3.5-9B"


def dataset(path: Path, n: int, tag: str) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"{tag} question {i}: " + "why? " * 20},
                          {"role": "assistant", "content": f"{tag} answer {i}."}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("served-vendor-files")) as s:
        yield s


@pytest.fixture
def tg(server, tmp_path):
    exe = str(Path(sys.executable).with_name("tg"))
    env = {**os.environ, "TOGETHER_API_KEY": "tg-test-key", "TOGETHER_BASE_URL": server.url,
           "HOME": str(tmp_path), "COLUMNS": "120", "NO_COLOR": "1", "TOGETHER_TELEMETRY_DISABLED": "1"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                              timeout=120, cwd=tmp_path)

    return run


def test_tg_uploads_dedups_lists_retrieves_downloads_and_deletes(tg, tmp_path, server):
    train = dataset(tmp_path / "train.jsonl", 6, "tg")
    up = tg("files", "upload", "train.jsonl")
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.splitlines()[0] == "Success!"
    file_id = up.stdout.splitlines()[1].strip()
    assert file_id.startswith("file-")
    assert "POST /v1/files 302" in server.logged(f"POST /v1/files/{file_id}/preprocess 200")

    again = tg("files", "upload", "train.jsonl")
    assert again.returncode == 0 and f"File already exists under ID: {file_id}" in again.stdout
    again_json = tg("--json", "files", "upload", "train.jsonl")
    assert again_json.returncode == 1 and json.loads(again_json.stdout)["file_id"] == file_id

    other = dataset(tmp_path / "other.jsonl", 3, "json")
    uploaded = tg("--json", "files", "upload", other.name)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    shown = json.loads(uploaded.stdout)
    assert set(shown) == {"id", "bytes", "created_at", "filename", "FileType", "object", "purpose", "processing_status"}
    assert (shown["filename"], shown["bytes"], shown["FileType"]) == ("other.jsonl", other.stat().st_size, "jsonl")

    listed = tg("--json", "files", "list")
    assert listed.returncode == 0 and {file_id, shown["id"], "file-train"} <= {f["id"] for f in json.loads(listed.stdout)}
    table = tg("files", "list")
    assert table.returncode == 0 and file_id in table.stdout

    retrieved = tg("files", "retrieve", file_id)
    assert retrieved.returncode == 0 and "Retrieved file details" in retrieved.stdout
    assert "Name:    train.jsonl" in retrieved.stdout
    full = json.loads(tg("--json", "files", "retrieve", file_id).stdout)
    assert full["processing_status"] == "COMPLETED" and full["validation_report"]["nlines"] == 6

    content = tg("files", "retrieve-content", file_id, "--stdout")
    # tg prints through Rich, which wraps at the terminal's width: compare without the line breaks
    assert content.returncode == 0 and "".join(content.stdout.split()) == "".join(train.read_text().split())
    (tmp_path / "down").mkdir()
    download = tg("files", "download", file_id, "--output", "down")
    assert download.returncode == 0, download.stdout + download.stderr
    assert (tmp_path / "down" / "train.jsonl").read_bytes() == train.read_bytes()

    deleted = tg("files", "delete", file_id)
    assert deleted.returncode == 0 and "File deleted" in deleted.stdout
    gone = tg("files", "retrieve", file_id)
    assert gone.returncode == 1 and gone.stdout.splitlines()[:2] == ["× Error", f"  no file with id {file_id!r}"]


def test_tg_creates_a_job_from_local_files(tg, tmp_path, server):
    dataset(tmp_path / "train.jsonl", 8, "create")
    dataset(tmp_path / "val.jsonl", 2, "create-val")
    made = tg("ft", "create", "-t", "./train.jsonl", "-v", "./val.jsonl", "--model", MODEL, "--n-evals", "1",
              "--confirm")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Fine-tuning job has been submitted" in made.stdout
    job_id = made.stdout.split("(ft-")[1].split(")")[0]
    job = json.loads(tg("--json", "ft", "retrieve", "ft-" + job_id).stdout)
    names = {f["id"]: f["filename"] for f in json.loads(tg("--json", "files", "list").stdout)}
    assert names[job["training_file"]] == "train.jsonl" and names[job["validation_file"]] == "val.jsonl"

    unknown_model = tg("ft", "create", "-t", "./train.jsonl", "--model", "acme/not-a-model", "--confirm")
    assert unknown_model.returncode == 1 and "not available for fine-tuning" in unknown_model.stdout


def test_the_sdk_uploads_a_large_file_in_parts(server, tmp_path, monkeypatch):
    # the SDK's own constants, lowered: the multipart exchange without writing 5 GiB
    monkeypatch.setattr(sdk_files, "MULTIPART_THRESHOLD_GB", 0.0)
    monkeypatch.setattr(sdk_files, "TARGET_PART_SIZE_MB", 0.01)
    monkeypatch.setattr(sdk_files, "MIN_PART_SIZE_MB", 0.004)
    big = dataset(tmp_path / "big.jsonl", 300, "multipart")
    with together.Together(api_key="sdk-key", base_url=server.url, max_retries=0) as client:
        file = client.files.upload(str(big), purpose="fine-tune", check=False)
        assert file.bytes == big.stat().st_size and file.filename == "big.jsonl"
        log = server.logged("POST /v1/files/multipart/complete 200")
        assert "POST /v1/files/multipart/initiate 200" in log and "/parts/4?" in log
        assert client.files.content(file.id).read() == big.read_bytes()
        again = client.files.upload(str(big), purpose="fine-tune", check=False)  # 409 -> the same file
        assert again.id == file.id
        assert "POST /v1/files/multipart/initiate 409" in server.log()


def big_dataset(path: Path, mib: int) -> Path:
    """A valid dataset of about ``mib`` MiB (over sim serve's 16 MiB limit for API bodies)."""
    row = json.dumps({"messages": [{"role": "user", "content": "why? " * 200},
                                   {"role": "assistant", "content": "because. " * 100}]}) + "\n"
    path.write_text(row * (mib * 2**20 // len(row) + 1))
    return path


def test_a_dataset_over_16_mib_uploads_in_one_put_as_to_s3(tg, tmp_path, server):
    """A signed upload URL stands for S3's presigned PUT (5 GiB): the 16 MiB cap on API bodies does
    not apply to it. Both CLIs upload a 20 MiB file whole, and its bytes come back as sent."""
    data = big_dataset(tmp_path / "big20.jsonl", 20)
    env = {"TOGETHER_API_KEY": "ftctl-test-key", "FTCTL_HOME": str(tmp_path / "home")}
    up = subprocess.run([sys.executable, "-m", "ftctl", "files", "upload", str(data), "-q", "--no-check",
                         "--backend", "together", "--base-url", server.url], capture_output=True, text=True,
                        env={**os.environ, **env}, timeout=120)
    assert up.returncode == 0, up.stderr
    file_id = up.stdout.strip()
    got = subprocess.run([sys.executable, "-m", "ftctl", "files", "content", file_id, "--backend", "together",
                          "--base-url", server.url], capture_output=True, env={**os.environ, **env}, timeout=120)
    assert got.returncode == 0 and got.stdout == data.read_bytes()

    other = big_dataset(tmp_path / "big21.jsonl", 21)
    theirs = tg("files", "upload", other.name)
    assert theirs.returncode == 0 and theirs.stdout.splitlines()[0] == "Success!", theirs.stdout + theirs.stderr


def test_a_signed_upload_over_5_gib_is_refused_before_it_is_sent(server):
    """The declared length alone answers 413, naming the limit; nothing is read."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(server.url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(b"PUT /_sim/uploads/file-x?signature=s HTTP/1.1\r\nHost: t\r\n"
                     b"Content-Length: 6000000000\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert str(5 * 2**30).encode() in body
