"""Issue 13: ``ftctl delete`` and ``DELETE /v1/fine-tunes/{id}``: an ended job goes for good, with
ftctl's local records of it; a running one is refused; scripts need --yes; the vendor's ``tg``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kit import BASE, answer_on_a_terminal
from served import on_the_api


def remembered(home: Path) -> list[str]:
    path = home / "jobs.json"
    return [j["id"] for j in json.loads(path.read_text())["jobs"]] if path.exists() else []


def test_delete_removes_the_job_and_ftctls_records_of_it(ftctl, ftctl_home):
    keep = ftctl(*BASE, "--n-evals", "4", "--early-stopping", "-q").stdout.strip()
    gone = ftctl(*BASE, "--n-evals", "4", "--early-stopping", "-q").stdout.strip()
    assert {keep, gone} <= set(remembered(ftctl_home))
    result = ftctl("delete", gone, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert gone in result.json()["message"]
    assert ftctl("retrieve", gone).exit_code == 6
    assert gone not in [j["id"] for j in ftctl("list", "--json").json()]
    assert remembered(ftctl_home) == [keep]  # the cache and the settings sent for it are gone
    again = ftctl("delete", gone, "--yes")
    assert again.exit_code == 6 and "no fine-tuning job" in again.stderr


def test_a_running_job_is_refused_in_one_line(ftctl):
    running = ftctl(*BASE, "--n-epochs", "50", "-q", env={"FTCTL_SIM_SPEED": "0.5"}).stdout.strip()
    result = ftctl("delete", running, "--yes")
    assert result.exit_code == 1
    (line,) = result.problems
    assert line.startswith("Error: ") and running in line and "cancel it first" in line
    assert ftctl("retrieve", running, "--json").exit_code == 0


def test_no_prompt_off_a_terminal(ftctl):
    job = ftctl(*BASE, "-q").stdout.strip()
    for env in ({}, {"FTCTL_FORCE_TTY": "1"}):
        result = ftctl("delete", job, env=env)
        assert result.exit_code == 2 and "needs --yes" in result.stderr
    assert ftctl("retrieve", job).exit_code == 0
    assert ftctl("delete", "not a job", "--yes").exit_code == 2


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("answer", [b"n", b"y"])
def test_delete_asks_on_a_terminal(ftctl, answer):
    job = ftctl(*BASE, "-q").stdout.strip()
    answered, code, text = answer_on_a_terminal(["delete", job], b"Delete ", answer)
    assert answered and code == 0, text
    if answer == b"n":
        assert "Not deleted." in text and ftctl("retrieve", job).exit_code == 0
    else:
        assert "deleted" in text and ftctl("retrieve", job).exit_code == 6


def test_delete_over_http_and_with_the_vendor_cli(srv, ftctl, tmp_path):
    api = on_the_api(ftctl, srv.url, "served-key")
    first = api(*BASE, "-q").stdout.strip()
    second = api(*BASE, "-q").stdout.strip()
    for job in (first, second):  # 24 steps at 300 steps/s, and the phases around them
        deadline = time.monotonic() + 60
        while api("retrieve", job, "--json").json()["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.1)
    deleted = api("delete", first, "--yes", "--json")
    assert deleted.exit_code == 0, deleted.stderr
    assert first in deleted.json()["message"]
    assert api("retrieve", first).exit_code == 6
    assert "DELETE /v1/fine-tunes/" + first + " 200" in srv.logged("DELETE /v1/fine-tunes/" + first)
    running = api(*BASE, "--n-epochs", "1000", "-q").stdout.strip()
    refused = api("delete", running, "--yes")
    assert refused.exit_code == 1 and "cancel it first" in refused.stderr and "HTTP 400" in refused.stderr

    env = {**os.environ, "TOGETHER_API_KEY": "tg-test-key", "TOGETHER_BASE_URL": srv.url, "HOME": str(tmp_path),
           "NO_COLOR": "1", "TOGETHER_TELEMETRY_DISABLED": "1"}
    tg = subprocess.run([str(Path(sys.executable).with_name("tg")), "ft", "delete", second, "--force"],
                        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    assert tg.returncode == 0, tg.stdout + tg.stderr
    assert "Deleted fine-tuning job" in tg.stdout
    assert api("retrieve", second).exit_code == 6
