"""Issue 16: files on the simulator, over HTTP and as commands; what the simulator refuses at create."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from served import on_the_api, served

MODEL = "Qwen/Qwen3.5-9B"
KEY = "files-test-key"


def conversation(i: int, *, assistant: bool = True) -> str:
    messages = [{"role": "user", "content": f"Question {i}: how do I true a wheel?"}]
    if assistant:
        messages.append({"role": "assistant", "content": f"Answer {i}: tighten and loosen spokes in small turns."})
    return json.dumps({"messages": messages})


@pytest.fixture
def train(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(conversation(i) for i in range(12)) + "\n")
    return path


@pytest.fixture
def invalid(tmp_path: Path) -> Path:
    """Valid JSON lines, but line 3 has no assistant turn: the offline check and the server refuse it."""
    path = tmp_path / "invalid.jsonl"
    path.write_text("\n".join(conversation(i, assistant=i != 2) for i in range(5)) + "\n")
    return path


def ids(result) -> list[str]:
    return [f["id"] for f in result.json()]


# -- the simulator's store -------------------------------------------------------------------------


def test_a_new_store_holds_the_two_sample_files(ftctl):
    listed = ftctl("files", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    by_id = {f["id"]: f for f in listed.json()}
    assert set(by_id) == {"file-train", "file-val"}
    for f in by_id.values():
        assert f["processing_status"] == "COMPLETED" and f["validation_report"]["valid"] is True
        assert f["validation_report"]["dataset_format"] == "conversation" and f["created_at"] > 0
    content = ftctl("files", "content", "file-train")
    rows = [json.loads(line) for line in content.stdout.splitlines()]
    assert len(rows) == by_id["file-train"]["validation_report"]["nlines"] >= 20
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)


def test_the_readme_first_command_still_works(ftctl):
    result = ftctl("create", "--training-file", "file-train", "--validation-file", "file-val", "--model", MODEL,
                   "--n-epochs", "5", "--n-evals", "10", "--early-stopping", "--patience", "2",
                   "--sim-scenario", "plateau", "--wait")
    assert result.exit_code == 0, result.stderr


def test_a_store_of_schema_2_is_upgraded_in_place_with_the_samples(ftctl, ftctl_home):
    job = ftctl("create", "-t", "file-train", "-m", MODEL, "-q").stdout.strip()
    db = sqlite3.connect(ftctl_home / "simulator.db")
    db.execute("DROP TABLE files")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    assert ftctl("retrieve", job, "--json").json()["id"] == job
    assert set(ids(ftctl("files", "list", "--json"))) == {"file-train", "file-val"}
    assert sqlite3.connect(ftctl_home / "simulator.db").execute("PRAGMA user_version").fetchone()[0] == 3


# -- ftctl files on the simulator --------------------------------------------------------------------


def test_upload_prints_the_id_and_a_second_upload_returns_the_same_one(ftctl, train, ftctl_home):
    first = ftctl("files", "upload", str(train))
    assert first.exit_code == 0, first.stderr
    file_id = first.stdout.strip()
    assert file_id.startswith("file-") and "\n" not in file_id
    again = ftctl("files", "upload", str(train))
    assert again.exit_code == 0 and again.stdout.strip() == file_id
    assert f"identical to {file_id}" in again.stderr and "nothing was sent" in again.stderr
    assert ftctl("files", "upload", str(train), "-q").stdout == file_id + "\n"
    assert ids(ftctl("files", "list", "--json")).count(file_id) == 1
    blobs = [p for p in (ftctl_home / "files").iterdir() if p.is_file()]
    assert len(blobs) == 3  # the two samples and this file, once
    file = ftctl("files", "retrieve", file_id, "--json").json()
    assert (file["filename"], file["bytes"], file["purpose"], file["FileType"]) == \
           ("train.jsonl", train.stat().st_size, "fine-tune", "jsonl")
    assert file["processing_status"] == "COMPLETED" and file["validation_report"]["nlines"] == 12
    assert ftctl("files", "content", file_id).stdout == train.read_text()


def test_an_invalid_file_is_refused_before_anything_is_sent(ftctl, invalid):
    result = ftctl("files", "upload", str(invalid))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.problems == [f"Error: {invalid}:3: at least one message must have the assistant role; "
                               "nothing was uploaded"] or ":3:" in result.problems[0]
    assert set(ids(ftctl("files", "list", "--json"))) == {"file-train", "file-val"}


def test_the_server_reports_an_invalid_file_uploaded_without_the_check(ftctl, invalid):
    file_id = ftctl("files", "upload", str(invalid), "--no-check", "-q").stdout.strip()
    file = ftctl("files", "retrieve", file_id, "--json").json()
    assert file["processing_status"] == "INVALID_FORMAT"
    report = file["validation_report"]
    assert report["valid"] is False and report["error_type"] == "INVALID_FORMAT"
    assert report["error"].startswith("Line 3: ")
    shown = ftctl("files", "retrieve", file_id)
    assert "INVALID_FORMAT" in shown.stdout and report["error"] in shown.stdout
    # and no job trains on it
    refused = ftctl("create", "-t", file_id, "-m", MODEL)
    assert refused.exit_code == 2 and len(refused.problems) == 1
    assert f"--training-file {file_id} failed validation: Line 3" in refused.problems[0]  # the flag's words


def test_list_retrieve_delete_and_content_follow_the_output_contract(ftctl, train, tmp_path):
    file_id = ftctl("files", "upload", str(train), "-q").stdout.strip()
    rows = [line.split("\t") for line in ftctl("files", "list").stdout.splitlines()]
    assert rows[0][:5] == [file_id, "train.jsonl", str(train.stat().st_size), "fine-tune", "COMPLETED"]
    assert ftctl("files", "list", "--fields", "id,bytes").json()[0] == {"id": file_id,
                                                                        "bytes": train.stat().st_size}
    assert ftctl("files", "list", "--fields", "nope").exit_code == 2
    out = tmp_path / "copy.jsonl"
    wrote = ftctl("files", "content", file_id, "-o", str(out))
    assert wrote.exit_code == 0 and out.read_bytes() == train.read_bytes()
    refused = ftctl("files", "delete", file_id)
    assert refused.exit_code == 2 and "needs --yes" in refused.problems[0]
    deleted = ftctl("files", "delete", file_id, "--yes", "--json")
    assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    assert file_id not in ids(ftctl("files", "list", "--json"))


@pytest.mark.parametrize("command", [("retrieve",), ("delete", "--yes"), ("content",)])
def test_an_unknown_file_id_is_exit_6_and_one_line(ftctl, command):
    result = ftctl("files", command[0], "file-nope", *command[1:])
    assert result.exit_code == 6 and result.stdout == ""
    assert len(result.problems) == 1 and result.problems[0].startswith("Error: no file with id 'file-nope'")


# -- what create refuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, code, message", [
    (("-t", "file-nope", "-m", MODEL), 6, "training_file 'file-nope' is not an uploaded file"),
    (("-t", "file-train", "-v", "file-nope", "-m", MODEL), 6, "validation_file 'file-nope' is not an uploaded"),
    (("-t", "file-train", "-m", "acme/not-a-model"), 6, "model 'acme/not-a-model' is not available for fine-tuning"),
    (("-t", "file-train", "--from-checkpoint", "ft-nope"), 6, "from_checkpoint 'ft-nope': no fine-tuning job"),
])
def test_create_refuses_what_the_api_refuses(ftctl, args, code, message):
    before = ftctl("list", "--json").json()
    result = ftctl("create", *args)
    assert result.exit_code == code and result.stdout == ""
    assert len(result.problems) == 1 and message in result.problems[0]
    assert ftctl("list", "--json").json() == before


def test_from_checkpoint_needs_a_saved_checkpoint_at_that_step(ftctl):
    job = ftctl("create", "-t", "file-train", "-m", MODEL, "--n-checkpoints", "2", "-q").stdout.strip()
    steps = sorted(c["step"] for c in ftctl("checkpoints", job, "--json").json())
    assert steps
    missing = ftctl("create", "-t", "file-train", "--from-checkpoint", f"{job}:{steps[-1] + 1}")
    assert missing.exit_code == 6 and f"has no checkpoint at step {steps[-1] + 1}" in missing.problems[0]
    ok = ftctl("create", "-t", "file-train", "--from-checkpoint", f"{job}:{steps[0]}", "-q")
    assert ok.exit_code == 0, ok.stderr


def test_create_with_local_files_uploads_checks_and_waits(ftctl, train, tmp_path, invalid):
    val = tmp_path / "val.jsonl"
    val.write_text(conversation(99) + "\n")
    dry = ftctl("create", "-t", str(train), "-v", str(val), "-m", MODEL, "--dry-run", "--json")
    assert dry.exit_code == 0 and dry.json()["training_file"] == str(train)
    assert set(ids(ftctl("files", "list", "--json"))) == {"file-train", "file-val"}  # nothing uploaded
    made = ftctl("create", "-t", str(train), "-v", str(val), "-m", MODEL, "--json")
    assert made.exit_code == 0, made.stderr
    job = made.json()
    files = {f["filename"]: f["id"] for f in ftctl("files", "list", "--json").json()
             if f["id"] not in ("file-train", "file-val")}
    assert (job["training_file"], job["validation_file"]) == (files["train.jsonl"], files["val.jsonl"])
    again = ftctl("create", "-t", str(train), "-m", MODEL, "--json").json()
    assert again["training_file"] == files["train.jsonl"]  # the same bytes are not uploaded twice
    bad = ftctl("create", "-t", str(invalid), "-m", MODEL)
    assert bad.exit_code == 2 and ":3:" in bad.problems[0]
    dry_bad = ftctl("create", "-t", str(invalid), "-m", MODEL, "--dry-run")
    assert dry_bad.exit_code == 2


# -- over HTTP: ftctl's httpx backend against ftctl sim serve ----------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with served(tmp_path_factory.mktemp("served-files")) as s:
        yield s


def test_ftctl_files_over_http(ftctl, server, train, tmp_path, invalid):
    api = on_the_api(ftctl, server.url, KEY)
    up = api("files", "upload", str(train))
    assert up.exit_code == 0, up.stderr
    file_id = up.stdout.strip()
    assert api("files", "upload", str(train), "-q").stdout.strip() == file_id
    assert "POST /v1/files 409" in server.logged("POST /v1/files 409")
    assert file_id in ids(api("files", "list", "--json"))
    assert api("files", "retrieve", file_id, "--json").json()["processing_status"] == "COMPLETED"
    assert api("files", "content", file_id).stdout == train.read_text()
    unknown = api("files", "retrieve", "file-nope")
    assert unknown.exit_code == 6 and len(unknown.problems) == 1 and "no file with id 'file-nope'" in unknown.problems[0]
    made = api("create", "-t", str(train), "-v", "file-val", "-m", MODEL, "--json")
    assert made.exit_code == 0, made.stderr
    assert made.json()["training_file"] == file_id
    refused = api("create", "-t", "file-train", "-m", "acme/not-a-model")
    assert refused.exit_code == 6 and "not available for fine-tuning" in refused.problems[0]
    assert KEY not in up.stderr + refused.stderr
    assert api("files", "delete", file_id, "--yes").exit_code == 0
    assert api("files", "retrieve", file_id).exit_code == 6


def test_the_presigned_put_never_carries_the_key(tmp_path, train):
    from ftctl.backends.together import HttpSettings, TogetherBackend
    from ftctl.config import Config

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST" and request.url.path == "/v1/files":
            return httpx.Response(302, headers={"Location": "https://storage.example.net/b/k?sig=1",
                                                "X-Together-File-Id": "file-1"})
        if request.method == "PUT":
            return httpx.Response(200)
        return httpx.Response(200, json={"id": "file-1", "object": "file", "created_at": 1, "filename": "train.jsonl",
                                         "bytes": train.stat().st_size, "purpose": "fine-tune", "FileType": "jsonl",
                                         "processing_status": "PENDING"})

    config = Config(backend="together", backend_defaulted=False, base_url="https://api.example.com",
                    home=tmp_path, sim_speed=1.0, api_key=KEY)
    backend = TogetherBackend(config, settings=HttpSettings(max_retries=0), transport=httpx.MockTransport(handler))
    file, existed = backend.upload_file(train)
    assert file["id"] == "file-1" and existed is False
    post, put, preprocess = seen
    assert post.headers["authorization"] == f"Bearer {KEY}"
    form = post.content.decode()
    assert 'name="checksum"' in form and 'name="file_name"' in form and 'filename=' not in form
    assert put.url.host == "storage.example.net" and "authorization" not in put.headers
    assert put.content == train.read_bytes()
    assert preprocess.url.path == "/v1/files/file-1/preprocess"


def test_ctrl_c_mid_upload_leaves_nothing_registered_and_says_so(ftctl, tmp_path, ftctl_home, monkeypatch):
    from ftctl.backend import Upload

    big = tmp_path / "big.jsonl"
    big.write_text("".join(conversation(i) + "\n" for i in range(30_000)))  # several 1 MiB chunks
    assert big.stat().st_size > 3 << 20
    real = Upload.reach

    def interrupted(self, done):
        real(self, done)
        if done > 1 << 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(Upload, "reach", interrupted)
    result = ftctl("files", "upload", str(big))
    assert result.exit_code == 130 and result.stdout == ""
    assert "interrupted on the simulator: nothing was registered; no file was created" in result.stderr
    monkeypatch.setattr(Upload, "reach", real)
    assert set(ids(ftctl("files", "list", "--json"))) == {"file-train", "file-val"}
    assert not [p for p in (ftctl_home / "files").iterdir() if p.name.startswith(".upload-")]  # no partial bytes
    assert ftctl("files", "upload", str(big), "-q").exit_code == 0  # and it uploads in full afterwards


def test_the_served_estimate_follows_the_file_state(server, tmp_path, invalid):
    headers = {"Authorization": "Bearer t"}
    ok = httpx.post(server.url + "/v1/fine-tunes/estimate-price", headers=headers,
                    json={"training_file": "file-train", "model": MODEL}).json()
    assert ok["estimation_available"] is True
    with httpx.Client(base_url=server.url, headers=headers) as client:
        import hashlib

        data = invalid.read_bytes()
        posted = client.post("/v1/files", files={"purpose": (None, "fine-tune"), "file_name": (None, "bad.jsonl"),
                                                 "file_type": (None, "jsonl"),
                                                 "checksum": (None, hashlib.sha256(data).hexdigest())})
        assert posted.status_code == 302
        assert httpx.put(posted.headers["location"], content=data).status_code == 200
        file_id = posted.headers["x-together-file-id"]
        assert client.post(f"/v1/files/{file_id}/preprocess").status_code == 200
        bad = client.post("/v1/fine-tunes/estimate-price", json={"training_file": file_id, "model": MODEL}).json()
    assert bad == {"estimation_available": False, "unavailable_reason": "train_file_invalid"}


AGREE_CASES = {
    "not JSON": ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
                 '{"messages": [oops'],
    "no assistant turn": ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
                          '{"messages": [{"role": "user", "content": "a"}]}'],
    "unknown role": ['{"messages": [{"role": "robot", "content": "a"}, {"role": "assistant", "content": "b"}]}'],
    "weight not 0 or 1": ['{"messages": [{"role": "user", "content": "a"}, '
                          '{"role": "assistant", "content": "b", "weight": 2}]}'],
    "two formats in one file": ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}',
                                '{"prompt": "a", "completion": "b"}'],
}


@pytest.mark.parametrize("case", AGREE_CASES)
def test_the_servers_validation_report_agrees_with_files_check(ftctl, tmp_path, case):
    """The simulator processes an upload with the checker `files check` runs: the report it gives
    names the same line and says the same thing as the first problem `files check` finds."""
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(AGREE_CASES[case]) + "\n")
    checked = ftctl("files", "check", str(path), "--json")
    assert checked.exit_code == 2
    first = checked.json()[0]["errors"][0]
    file_id = ftctl("files", "upload", str(path), "--no-check", "-q").stdout.strip()
    report = ftctl("files", "retrieve", file_id, "--json").json()["validation_report"]
    assert report["valid"] is False
    assert report["error"] == f"Line {first['line']}: {first['message']}"
