"""examples/ci.sh, run as CI runs it (a real bash, ftctl on PATH) against the simulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kit import ROOT

SCRIPT = ROOT / "examples" / "ci.sh"
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None, reason="examples/ci.sh is a bash script")


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """A directory with just `ftctl` and `python3`: a CI machine without jq."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ftctl").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ftctl "$@"\n')
    (bin_dir / "ftctl").chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    return bin_dir


def run_ci(tools: Path, *, path: str | None = None, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PATH": path or f"{tools}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, env=full, timeout=120)


def outputs(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if not line.startswith("::"))


@pytest.mark.parametrize("json_tool", ["whatever is installed", "python3 only"])
def test_early_stopped_job_gives_its_best_step(tools, tmp_path, ftctl, json_tool):
    github_output = tmp_path / "github-output"
    path = str(tools) if json_tool == "python3 only" else None
    result = run_ci(tools, path=path, SIM_SCENARIO="plateau", GITHUB_OUTPUT=str(github_output))
    assert result.returncode == 0, result.stderr
    got = outputs(result.stdout)
    job = ftctl("retrieve", got["job"], "--json").json()
    assert job["early_stopped"] is True
    assert got == {"job": job["id"], "status": "completed", "early_stopped": "true",
                   "best_step": str(job["early_stopping_best_step"]),
                   "best_eval_loss": json.dumps(job["early_stopping_best_metric"]),
                   "model": job["model_output_name"]}
    assert github_output.read_text() == result.stdout
    assert f"the checkpoint of step {got['best_step']}" in result.stderr


def test_it_starts_from_local_files(tools, tmp_path, ftctl):
    rows = [json.dumps({"messages": [{"role": "user", "content": f"Question {i}?"},
                                     {"role": "assistant", "content": f"Answer {i}."}]}) for i in range(40)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows[:32]) + "\n")
    (tmp_path / "val.jsonl").write_text("\n".join(rows[32:]) + "\n")
    result = run_ci(tools, SIM_SCENARIO="plateau", TRAINING_FILE=str(tmp_path / "train.jsonl"),
                    VALIDATION_FILE=str(tmp_path / "val.jsonl"))
    assert result.returncode == 0, result.stderr
    job = ftctl("retrieve", outputs(result.stdout)["job"], "--json").json()
    uploaded = {f["id"] for f in ftctl("files", "list", "--json").json()} - {"file-train", "file-val"}
    assert {job["training_file"], job["validation_file"]} == uploaded and job["early_stopped"] is True


def test_failed_job_exits_5_with_its_events_and_still_gives_the_job(tools, tmp_path, ftctl):
    github_output = tmp_path / "github-output"
    result = run_ci(tools, SIM_SCENARIO="error", GITHUB_OUTPUT=str(github_output))
    assert result.returncode == 5, result.stderr
    (job,) = ftctl("list", "--json").json()
    assert outputs(result.stdout) == {"job": job["id"], "status": "error"}
    assert outputs(github_output.read_text()) == {"job": job["id"], "status": "error"}
    assert "ended as error; its last events:" in result.stderr
    assert "job_error" in result.stderr


def test_timeout_exits_3_and_leaves_the_job_running_and_gives_the_job_to_cancel(tools, ftctl, tmp_path):
    github_output = tmp_path / "github-output"
    result = run_ci(tools, FTCTL_SIM_SPEED="0.01", WAIT_TIMEOUT="1", GITHUB_OUTPUT=str(github_output))
    assert result.returncode == 3, result.stderr
    assert "timed out after 1;" in result.stderr
    (job,) = ftctl("list", "--json").json()
    assert job["status"] not in ("cancelled", "completed", "error")
    got = outputs(github_output.read_text())
    assert got["job"] == job["id"] and got["status"] == job["status"]  # what the README's cancel step reads
    assert outputs(result.stdout) == got
    assert f"cancel with: ftctl cancel {job['id']} --yes" in result.stderr


def test_in_github_actions_the_summary_is_written_and_the_annotations_printed(tools, tmp_path):
    summary = tmp_path / "summary.md"
    result = run_ci(tools, SIM_SCENARIO="plateau", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
                    GITHUB_OUTPUT=str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    job = outputs(result.stdout)["job"]
    assert "```mermaid\n" in summary.read_text() and job in summary.read_text()
    notices = [line for line in result.stdout.splitlines() if line.startswith("::notice ")]
    assert len(notices) == 1 and job in notices[0]


def test_bad_request_exits_2_and_creates_nothing(tools, ftctl):
    result = run_ci(tools, TRAINING_FILE="my file.jsonl", SIM_SCENARIO="plateau")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "--training-file must be a non-empty id" in result.stderr and "got 'my file.jsonl'" in result.stderr
    assert ftctl("list", "--json").json() == []


def test_readme_github_actions_snippet_runs_the_example():
    readme = (ROOT / "README.md").read_text()
    snippet = readme.split("```yaml", 1)[1].split("```", 1)[0]
    assert "examples/ci.sh" in snippet and "steps.finetune.outputs.best_step" in snippet
    # a job still running after a timeout (or a cancelled workflow) is cancelled by a follow-up step
    assert "if: failure() && steps.finetune.outputs.job != ''" in snippet
    assert "ftctl cancel ${{ steps.finetune.outputs.job }} --yes" in snippet
