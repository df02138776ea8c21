"""What each fast path imports, read from the real entry point with ``python -X importtime``.

Deterministic guards for the start-up budget of issue 6 (the timings themselves are in
``benchmarks/run.py``): the paths a user hits thousands of times must not load the network
client, the pydantic models, the plotting code, Rich's renderables or sqlite.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kit import MODEL

HEAVY = ("httpx", "pydantic", "ftctl.models", "ftctl.backends.together", "sqlite3", "matplotlib", "plotext",
         "ftctl.output.chart", "ftctl.output.plot_image", "rich.table", "rich.console")


def imported(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """Every module the process imported, from ``-X importtime`` on stderr."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftctl", *args], capture_output=True,
                          text=True, env=full_env, timeout=60)
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, proc.stderr
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))


def test_version_imports_nothing_but_ftctl():
    names = imported(["--version"])
    assert not heavy(names)
    assert "typer" not in names  # answered before the command tree is built
    assert "dataclasses" not in names and "inspect" not in names  # named tuples on every command's path


@pytest.mark.parametrize("words,cword", [("ftctl retrieve ft-", "2"), ("ftctl cre", "1"),
                                         ("ftctl metrics --fi", "2")])
def test_a_tab_round_trip_stays_light(ftctl, words, cword):
    ftctl("create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", "--early-stopping", "-q")
    env = {"_FTCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword,
           "TOGETHER_API_KEY": "tok-not-used"}
    assert not heavy(imported([], env))


def test_help_does_not_load_backends_or_models():
    names = imported(["--help"])
    assert not [n for n in heavy(names) if not n.startswith("rich")]  # Rich draws the help itself


@pytest.mark.parametrize("argv", [["retrieve", "ID", "--json"], ["list", "--json"], ["--json", "events", "ID"],
                                  ["checkpoints", "ID", "--json"]])
def test_json_reads_on_the_simulator_skip_typer_the_network_stack_and_models(ftctl, argv):
    """The quick reads (``ftctl.commands.quick``): no command tree, no Rich, no httpx."""
    job_id = ftctl("create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-evals", "4", "--early-stopping", "-q").stdout
    names = imported([job_id.strip() if a == "ID" else a for a in argv])
    assert "sqlite3" in names  # the simulator's store, and nothing heavier
    assert not [n for n in heavy(names) if not n.startswith("sqlite3")]
    assert "typer" not in names and "rich" not in names
    assert "ftctl.backends.simulator.files" not in names  # a job read needs no uploaded file
    # nor these: a frozen dataclass costs ~1 ms to define, `dataclasses` imports `inspect`, and
    # hashlib loads OpenSSL for a 32-character digest
    assert not {"dataclasses", "inspect", "hashlib", "decimal"} & names


@pytest.mark.parametrize("args", [["--help"], ["create", "--help"], ["sim", "serve", "--help"],
                                  ["files", "upload", "--help"], ["download", "--help"]])
def test_help_is_drawn_once_then_copied_without_typer_or_rich(args):
    """The second ``--help`` (same version, terminal and environment) comes from the help cache:
    the same bytes, with neither Typer nor Rich imported."""
    run = [sys.executable, "-m", "ftctl", *args]
    env = dict(os.environ)  # the environment imported() gives (the key includes what Rich reads)
    first = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    names = imported(args)
    second = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env)
    assert first.returncode == second.returncode == 0
    assert second.stdout == first.stdout and "Usage" in first.stdout
    assert "typer" not in names and not heavy(names)
    wider = subprocess.run(run, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "60"})
    assert wider.stdout != first.stdout and max(map(len, wider.stdout.splitlines())) <= 60  # keyed by width


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_files_check_is_offline_and_light(tmp_path, json_flag):
    """Checking a dataset touches no network client, models, store or plotting: it reads a file."""
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    names = imported(["files", "check", str(data), *json_flag])
    assert "ftctl.datasets.check" in names
    assert not [n for n in heavy(names) if not n.startswith("rich")]  # Rich draws the report on a terminal
    assert "ftctl.backends" not in names and "ftctl.files" not in names
