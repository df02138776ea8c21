"""What a person sees on a terminal, 80 and 120 columns wide, compared with tests/expected/*.txt.

The screenshot-equivalent check of issue 12: `list`, `retrieve`, `checkpoints` and `create --help`
drawn as on a terminal (FTCTL_FORCE_TTY=<columns>, NO_COLOR=1; COLUMNS for Typer's help), with the
random parts normalised (job ids, times: same lengths, so the layout is the one drawn). A change
to a view shows here as a diff to read, not as a vague failure.

Regenerate after an intended change, then read the diff before committing:

    UPDATE_EXPECTED=1 pytest -q tests/contract/test_screens.py && git diff tests/expected/
"""

from __future__ import annotations

import os
import re

import pytest
from kit import TESTS

EXPECTED = TESTS / "expected"
WIDTHS = (80, 120)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
WORKED = [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47, 0.40, 0.39, 0.38, 0.37]
BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", "Qwen/Qwen3.5-9B", "--random-seed", "7", "-q"]


def normalise(text: str, ids: list[str]) -> str:
    """Each job's uuid (and the 8-character prefix in its output model's name) becomes a fixed one
    of the same length, numbered by creation; every time becomes one fixed time of the same shape."""
    text = ANSI.sub("", text)
    for n, job_id in enumerate(ids, 1):
        uuid = job_id.removeprefix("ft-")
        fixed = f"00000000-0000-0000-0000-{n:012d}"
        text = text.replace(uuid, fixed).replace(f"-{uuid[:8]}", f"-{n:08d}")
    text = TIME.sub(lambda m: "2026-01-01T00:00:00" + (".000" if m.group(1) else "") + "Z", text)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


@pytest.fixture
def jobs(ftctl, scenario_file) -> list[str]:
    """Three ended jobs, oldest first: early-stopped, completed without early stopping, failed."""
    made = [ftctl(*BASE, "--n-epochs", "5", "--n-evals", "10", "--n-checkpoints", "3", "--early-stopping",
                  "--sim-scenario", scenario_file(WORKED, steps_per_epoch=24)),
            ftctl(*BASE, "--n-evals", "4", "--sim-scenario", "improving"),
            ftctl(*BASE, "--n-evals", "4", "--sim-scenario", "error")]
    assert all(r.exit_code == 0 for r in made), [r.stderr for r in made]
    return [r.stdout.strip() for r in made]


def screens(ftctl, ids: list[str], width: int) -> dict[str, str]:
    tty = {"FTCTL_FORCE_TTY": str(width), "NO_COLOR": "1", "COLUMNS": str(width)}
    runs = {"list": ("list",), "retrieve": ("retrieve", ids[0]), "retrieve_failed": ("retrieve", ids[2]),
            "checkpoints": ("checkpoints", ids[0]), "create_help": ("create", "--help")}
    out = {}
    for name, args in runs.items():
        result = ftctl(*args, env=tty)
        assert result.exit_code == 0, result.stderr
        out[f"{name}_{width}"] = normalise(result.stdout, ids)
    return out


@pytest.mark.parametrize("width", WIDTHS)
def test_terminal_screens_match_the_expected_files(ftctl, jobs, width):
    update = os.environ.get("UPDATE_EXPECTED") == "1"
    for name, text in screens(ftctl, jobs, width).items():
        path = EXPECTED / f"{name}.txt"
        if update:
            path.write_text(text)
            continue
        assert path.exists(), f"{path} is missing: UPDATE_EXPECTED=1 pytest -q {__file__}"
        assert text == path.read_text(), (
            f"{name}: the terminal view changed; if intended: UPDATE_EXPECTED=1 pytest -q tests/contract/test_screens.py\n"
            + text)
        assert all(len(line) <= width for line in text.splitlines()), f"{name}: a line wider than {width}"
