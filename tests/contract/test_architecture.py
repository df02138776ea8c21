"""The layers of docs/architecture.md, as contracts that `lint-imports` (import-linter) checks: the
tree keeps them, and a wrong import in a copy of the tree breaks them, so the next circle fails
here instead of waiting for a review."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kit import ROOT

LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")


def lint(package_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run([LINT, "--no-cache", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          env=env, cwd=package_root, timeout=120)


@pytest.fixture(scope="module")
def lint_available() -> None:
    assert LINT, "lint-imports is missing: pip install -e '.[test]' installs import-linter"


def test_the_tree_keeps_every_layer_contract(lint_available) -> None:
    result = lint(ROOT / "cli")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, wrong_import, contract", [
    ("output/chart.py", "import ftctl.backends.together", "Rendering never talks to the network"),
    ("wire.py", "import ftctl.models", "ground floor"),
    ("analysis.py", "import rich", "The core never prints"),
    ("commands/events.py", "import ftctl.commands.jobs", "No command module imports another"),
    ("backends/simulator/timeline.py", "import ftctl.output.chart", "Layers"),
    ("commands/session.py", "import ftctl.commands.options", "The quick reads never build the command tree"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path: Path, lint_available, module: str, wrong_import: str,
                                          contract: str) -> None:
    copy = tmp_path / "cli"
    shutil.copytree(ROOT / "cli", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "ftctl" / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # deliberately wrong\n")
    result = lint(copy)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
