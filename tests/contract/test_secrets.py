"""Issue 7: the API key (and the W&B key) never leave the environment. Every command runs with a
known fake key, plainly and with --debug, on the real backend (a served simulator) and on the
embedded simulator, through success and through every kind of error; then every output, every file
under FTCTL_HOME (the client's and the server's), the server's log and a written chart are searched
for the keys. ``pytest -rP tests/contract/test_secrets.py`` prints how many checks ran.

Also: state files are user-only, and the key is never sent over plain http off this machine.
"""

from __future__ import annotations

import functools
import os
import stat
import uuid
from pathlib import Path

import pytest
import typer.main

from served import served
from kit import MODEL

KEY = f"tgk-secret-{uuid.uuid4().hex}"
WANDB = f"wandb-secret-{uuid.uuid4().hex}"
SECRETS = (KEY, WANDB)
CREATE = ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL, "--n-epochs", "5", "--n-evals", "10",
          "--early-stopping", "--wandb-project-name", "p"]
HARNESS_FILES = {"serve.log", "worked.json"}  # written by the tests' harness, not by ftctl


def _leaks(blob: str | bytes) -> list[str]:
    data = blob.encode() if isinstance(blob, str) else blob
    return [s for s in SECRETS if s.encode() in data]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("secret-server")
    scenario = home / "worked.json"
    scenario.write_text('{"eval_loss": [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47, 0.40, 0.39, 0.38, 0.37], '
                        '"steps_per_epoch": 24}')
    # The server has the keys in its environment too: they must not reach its log or its store.
    with served(home, speed="300", args=("--faults", "--debug", "--scenario", str(scenario)),
                env={"TOGETHER_API_KEY": KEY, "WANDB_API_KEY": WANDB}) as s:
        s.home = home
        yield s


class Runs:
    """Runs ftctl with the keys set, plainly and with --debug, and keeps every output for the search."""

    def __init__(self, ftctl, capsys, server) -> None:
        self.ftctl, self.capsys, self.server = ftctl, capsys, server
        self.outputs: list[tuple[str, str]] = []
        self.together = ["--backend", "together", "--base-url", server.url]
        self.env = {"TOGETHER_API_KEY": KEY, "WANDB_API_KEY": WANDB, "FTCTL_RETRY_DELAY": "0.01"}

    def __call__(self, *argv: str, extra: dict[str, str] | None = None, debug_too: bool = True) -> list:
        results = []
        for debug in ((), ("--debug",)) if debug_too else ((),):
            try:
                result = self.ftctl(*argv, *debug, env={**self.env, **(extra or {})})
            except SystemExit:  # Typer's shell completion exits once it has answered
                self.outputs.append((" ".join(argv), "".join(self.capsys.readouterr())))
                continue
            self.outputs.append((" ".join((*argv, *debug)), result.stdout + result.stderr))
            results.append(result)
        return results

    def check(self, *homes: Path, more: tuple[tuple[str, bytes], ...] = ()) -> str:
        """Search every output, every file ftctl or the server wrote, and the server's log."""
        written = [(str(p), p.read_bytes()) for home in (*homes, self.server.home) for p in sorted(home.rglob("*"))
                   if p.is_file() and p.name not in HARNESS_FILES]
        written += [("the server's log", self.server.log().encode()), *more]
        everything = self.outputs + written
        leaks = [(name, _leaks(blob)) for name, blob in everything if _leaks(blob)]
        assert leaks == []
        summary = (f"secret-leak checks: {len(everything)} ({len(self.outputs)} command outputs, "
                   f"{len(written)} files and logs); leaks: {len(leaks)}")
        print(summary)
        return "".join(text for _, text in self.outputs)


@pytest.fixture
def runs(ftctl, capsys, server, monkeypatch) -> Runs:
    # Build the command tree once, not once per run: these tests run ftctl about 130 times.
    monkeypatch.setattr(typer.main, "get_command", functools.cache(typer.main.get_command))
    server.clear()
    yield Runs(ftctl, capsys, server)
    server.clear()


def test_every_command_on_the_real_backend_keeps_the_keys_out(runs, ftctl_home, tmp_path):
    together = runs.together
    job_id = runs(*CREATE, *together, "-q")[0].stdout.strip()
    assert job_id.startswith("ft-")
    for args in (["--json"], ["--dry-run"], ["--wait", "--json", "--interval", "0.05"]):
        runs(*CREATE, *together, *args)
    waited = runs("wait", job_id, *together, "--interval", "0.05", "--json")
    assert waited[0].exit_code == 0, waited[0].stderr
    for command in (["retrieve", job_id], ["list"], ["events", job_id], ["checkpoints", job_id],
                    ["metrics", job_id], ["metrics", job_id, "--raw"], ["explain", job_id],
                    ["explain", job_id, "--patience", "1,2,3"]):
        for view in ([], ["--json"]):
            assert runs(*command, *together, *view)[0].exit_code == 0
        runs(*command, *together, extra={"FTCTL_FORCE_TTY": "100"}, debug_too=False)
    runs("metrics", job_id, *together, "--plot", str(tmp_path / "chart.svg"))
    running = runs(*CREATE, "--n-epochs", "500", *together, "-q", debug_too=False)[0].stdout.strip()
    runs("cancel", running, "--yes", *together)
    traces = runs.check(ftctl_home, more=(("the chart", (tmp_path / "chart.svg").read_bytes()),))
    assert "> Authorization: Bearer ****" in traces and '"wandb_key":"****"' in traces  # really there to leak


def test_every_kind_of_error_keeps_the_keys_out(runs, ftctl_home, server):
    together = runs.together
    job_id = runs(*CREATE, *together, "-q", debug_too=False)[0].stdout.strip()
    runs("retrieve", "ft-00000000-0000-0000-0000-000000000000", *together)
    # the server echoing the key back wherever it can
    for fault in ({"kind": "status", "status": 401, "message": f"invalid key {KEY}"},
                  {"kind": "status", "status": 403, "message": f"key {KEY} has no access"},
                  {"kind": "status", "status": 500, "count": 3, "message": f"trace: Bearer {KEY}"},
                  {"kind": "status", "status": 429, "count": 3, "retry_after": "0"},
                  {"kind": "malformed"}, {"kind": "html", "count": 3}, {"kind": "empty"}, {"kind": "dropped"}):
        for _ in range(2):  # once plainly, once with --debug
            server.inject(**fault)
        runs("list", *together)
        server.clear()
    server.inject(kind="slow", delay=1, count=2)
    runs("retrieve", job_id, *together, extra={"FTCTL_READ_TIMEOUT": "0.2", "FTCTL_MAX_RETRIES": "0"})
    server.clear()
    runs("wait", job_id, *together, "--timeout", "0", "--interval", "0.05")
    runs("list", "--backend", "together", "--base-url", "http://192.0.2.1:9")  # refused: plain http elsewhere
    runs("list", "--backend", "together", "--base-url", "ftp://nowhere")
    runs("list", *together, extra={"TOGETHER_API_KEY": KEY + " with a space"})
    runs(*CREATE, *together, "--sim-scenario", "plateau")
    runs(*CREATE, *together, "--patience", "0")
    traces = runs.check(ftctl_home)
    assert "invalid key ****" in traces  # the echo, scrubbed


def test_the_simulator_and_offline_commands_keep_the_keys_out(runs, ftctl_home):
    sim = ["--backend", "sim"]
    local_id = runs(*CREATE, *sim, "-q", debug_too=False)[0].stdout.strip()
    for command in (["retrieve", local_id], ["list"], ["events", local_id], ["checkpoints", local_id],
                    ["metrics", local_id], ["explain", local_id], ["wait", local_id], ["cancel", local_id, "--yes"],
                    [*CREATE, *sim, "--json"], [*CREATE, *sim, "--dry-run"]):
        runs(*command, *sim)
    for shell in ("bash", "zsh", "fish", "powershell"):
        runs("completion", shell)
    runs("--version", debug_too=False)
    runs("--help", debug_too=False)
    runs(extra={"_FTCTL_COMPLETE": "complete_bash", "COMP_WORDS": "ftctl retrieve ", "COMP_CWORD": "2"},
         debug_too=False)
    runs(extra={"_FTCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "ftctl create --backend "},
         debug_too=False)
    names = [p.name for p in ftctl_home.iterdir()]
    assert "simulator.db" in names and "jobs.json" in names
    runs.check(ftctl_home)


def test_state_files_and_directories_are_user_only(ftctl, ftctl_home, server):
    made = ftctl(*CREATE, "-q")
    assert made.exit_code == 0
    ftctl("list")  # the cache is written too
    assert stat.S_IMODE(ftctl_home.stat().st_mode) == 0o700
    checked = 0
    for home in (ftctl_home, server.home):
        for path in home.rglob("*"):
            if path.name in HARNESS_FILES:
                continue
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
            checked += 1
    assert checked >= 5  # the store, its WAL files, the cache and its lock
    print(f"state files checked for user-only permissions: {checked}")


def test_a_new_home_is_created_user_only_even_with_a_permissive_umask(ftctl, tmp_path):
    home = tmp_path / "deep" / "new-home"
    old = os.umask(0)
    try:
        assert ftctl(*CREATE, "-q", env={"FTCTL_HOME": str(home)}).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


@pytest.mark.parametrize("how", [
    {"argv": ["--base-url", "http://api.together.example"]},
    {"env": {"TOGETHER_BASE_URL": "http://10.0.0.7:8765"}},
    {"env": {"TOGETHER_BASE_URL": "http://localhost.evil.example"}},
    {"env": {"TOGETHER_BASE_URL": "http://127.0.0.1.nip.io"}},
    {"argv": ["--base-url", "http://[fe80::1]:80"]},
], ids=["flag", "private address", "localhost look-alike", "loopback look-alike", "link-local v6"])
def test_the_key_is_refused_over_plain_http_off_this_machine(ftctl, how):
    result = ftctl("list", "--backend", "together", *how.get("argv", []),
                   env={"TOGETHER_API_KEY": KEY, "FTCTL_CONNECT_TIMEOUT": "0.2", "FTCTL_MAX_RETRIES": "0",
                        **how.get("env", {})})
    assert result.exit_code == 2
    assert "refusing to send TOGETHER_API_KEY over plain http to " in result.stderr
    assert "FTCTL_ALLOW_INSECURE_HTTP=1" in result.stderr and KEY not in result.stderr


def test_plain_http_on_this_machine_is_allowed(ftctl, server):
    assert server.url.startswith("http://127.0.0.1:")
    result = ftctl("list", "--backend", "together", "--base-url", server.url.replace("127.0.0.1", "localhost"),
                   env={"TOGETHER_API_KEY": KEY})
    assert result.exit_code == 0, result.stderr
