"""Shell completion: the committed scripts, `ftctl completion SHELL`, and what TAB offers.

TAB goes through the same protocol the scripts use: `_FTCTL_COMPLETE=complete_zsh` with
`_TYPER_COMPLETE_ARGS` (values with descriptions) or `complete_bash` with COMP_WORDS/COMP_CWORD,
in-process for speed, in a real process where cost and isolation matter, and once through a real
bash that sources `completions/ftctl.bash`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ftctl.commands.completers import JOB_ID_COMMANDS, quick_answer
from ftctl.completion_scripts import FILES, REGENERATE, SHELLS, drift, script
from ftctl.backends.simulator.scenarios import PRESETS
from kit import MODEL, ROOT

COMPLETIONS = ROOT / "completions"
BASE = ["create", "-t", "file-train", "-v", "file-val", "--sim-scenario", "plateau", "--n-evals", "4"]
ID_COMMANDS = {"retrieve", "cancel", "events", "metrics", "checkpoints"}


def _zsh_candidates(output: str) -> list[tuple[str, str]]:
    """Parse Typer's zsh answer: `_arguments '*: :(("value":"help" ...))'` or `_files`."""
    if output.strip() == "_files":
        return []
    assert output.startswith("_arguments '*: :((") and output.rstrip().endswith("))'"), output
    pairs = []
    for value, help_ in re.findall(r'"((?:[^"]|"")*)"(?::"((?:[^"]|"")*)")?', output):
        pairs.append((value.replace("\\\\:", ":"), help_.replace("\\\\:", ":")))
    return pairs


@pytest.fixture
def tab(capsys, monkeypatch):
    """TAB at the end of ``line`` (zsh protocol, in-process): [(value, description), ...]."""

    def complete(line: str, *, shell: str = "zsh") -> list[tuple[str, str]]:
        from ftctl.__main__ import run

        capsys.readouterr()
        with monkeypatch.context() as m:
            m.setenv("_FTCTL_COMPLETE", f"complete_{shell}")
            if shell == "bash":
                words = line.split(" ")
                m.setenv("COMP_WORDS", " ".join(words))
                m.setenv("COMP_CWORD", str(len(words) - 1))
            else:
                m.setenv("_TYPER_COMPLETE_ARGS", line)
            try:
                code = run([])  # a job id is answered before Typer is loaded
            except SystemExit as exit_:  # anything else, by Typer
                code = exit_.code
        out, err = capsys.readouterr()
        assert code in (0, None) and err == "", err
        if shell == "bash":
            return [(v, "") for v in out.splitlines() if v]
        return _zsh_candidates(out)

    return complete


def _create(ftctl, *args: str, env=None) -> str:
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def _write_cache(home: Path, jobs: list[dict]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "jobs.json").write_text(json.dumps({"version": 1, "jobs": jobs}))


# -- the scripts --------------------------------------------------------------------------------


def test_committed_scripts_match_what_typer_generates_now():
    stale = drift(COMPLETIONS)
    assert not stale, (f"completions/ drifted from the generated scripts ({', '.join(stale)}); "
                       f"rewrite them with: {REGENERATE}")
    assert sorted(p.name for p in COMPLETIONS.iterdir()) == sorted(FILES.values())


def test_zsh_script_starts_with_compdef_for_fpath_loading():
    assert (COMPLETIONS / "_ftctl").read_text().startswith("#compdef ftctl\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_command_prints_the_committed_script(ftctl, shell):
    result = ftctl("completion", shell)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (COMPLETIONS / FILES[shell]).read_text()
    assert result.stderr == ""  # no simulator note, nothing else


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_is_the_one_typer_serves_through_its_protocol(capsys, monkeypatch, shell):
    from ftctl.__main__ import run

    monkeypatch.setenv("_FTCTL_COMPLETE", f"source_{shell}")
    with pytest.raises(SystemExit):
        run([])
    assert capsys.readouterr().out.strip() == script(shell).strip()


def test_completion_json_and_unknown_shell(ftctl):
    data = ftctl("completion", "zsh", "--json").json()
    assert data == {"shell": "zsh", "script": script("zsh")}
    bad = ftctl("completion", "tcsh")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("Error: ftctl has no completion script for shell 'tcsh'; "
                                  "choose one of: bash, zsh, fish, powershell")


def test_no_shell_guessing_options(ftctl):
    assert "--install-completion" not in ftctl("--help").stdout
    assert "--show-completion" not in ftctl("--help").stdout
    result = ftctl("--show-completion")
    assert result.exit_code == 2 and "No such option" in result.stderr


# -- job ids ------------------------------------------------------------------------------------


def test_jobs_created_listed_or_retrieved_complete_newest_first(ftctl, tab):
    first = _create(ftctl, "-m", "Qwen/Qwen3-8B")
    second = _create(ftctl, "-m", "Qwen/Qwen3-14B")
    offered = tab("ftctl retrieve ")
    assert [v for v, _ in offered][:2] == [second, first]
    described = dict(offered)
    assert described[first].startswith("completed · Qwen/Qwen3-8B · 20")
    assert described[second].startswith("completed · Qwen/Qwen3-14B · 20")


def test_order_and_description_come_from_the_cache(ftctl_home, tab):
    _write_cache(ftctl_home, [
        {"id": "ft-new", "status": "running", "model": "m/new", "created_at": "2026-03-02T10:00:00.000Z"},
        {"id": "ft-old", "status": "completed", "model": "m/old", "created_at": "2026-03-01T09:30:00.000Z"},
        {"id": "xy-other", "status": "queued"},
    ])
    assert tab("ftctl metrics ") == [("ft-new", "running · m/new · 2026-03-02 10:00"),
                                      ("ft-old", "completed · m/old · 2026-03-01 09:30"),
                                      ("xy-other", "queued")]
    assert [v for v, _ in tab("ftctl metrics ft-")] == ["ft-new", "ft-old"]
    assert tab("ftctl metrics zz") == []


def test_every_command_that_takes_a_job_id_completes_it(ftctl_home, tab):
    import typer

    from ftctl.app import app

    _write_cache(ftctl_home, [{"id": "ft-1", "status": "running", "model": "m"}])
    group = typer.main.get_command(app)
    takes_id = {name for name, cmd in group.commands.items()
                if any(p.name == "job_id" for p in cmd.params)}
    assert ID_COMMANDS <= takes_id
    for name in sorted(takes_id):
        assert [v for v, _ in tab(f"ftctl {name} ")] == ["ft-1"], name


def _typer_answer(capsys, monkeypatch, env: dict[str, str]) -> tuple[str, int]:
    """What Typer itself answers for this TAB (the quick path bypassed)."""
    import typer

    from ftctl.app import app

    capsys.readouterr()
    with monkeypatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        with pytest.raises(SystemExit) as exit_:
            typer.main.get_command(app).main(args=[], prog_name="ftctl", standalone_mode=False)
    return capsys.readouterr().out, exit_.value.code or 0


def _protocol_env(shell: str, line: str, action: str = "get-args") -> dict[str, str]:
    env = {"_FTCTL_COMPLETE": f"complete_{shell}"}
    if shell == "bash":
        words = line.split(" ")
        return {**env, "COMP_WORDS": " ".join(words), "COMP_CWORD": str(len(words) - 1)}
    if shell == "powershell":
        word = "" if line.endswith(" ") else line.rsplit(" ", 1)[1]
        return {**env, "_TYPER_COMPLETE_ARGS": line.rstrip(" "), "_TYPER_COMPLETE_WORD_TO_COMPLETE": word}
    if shell == "fish":
        env["_TYPER_COMPLETE_FISH_ACTION"] = action
    return {**env, "_TYPER_COMPLETE_ARGS": line}


@pytest.mark.parametrize("shell,action", [("bash", ""), ("zsh", ""), ("fish", "get-args"),
                                          ("fish", "is-args"), ("powershell", "")])
def test_the_quick_answer_is_exactly_typers(ftctl_home, capsys, monkeypatch, shell, action):
    _write_cache(ftctl_home, [
        {"id": "ft-a1", "status": "running", "model": "org/it's \"quoted\" $x", "created_at": "2026-01-02T03:04:05Z"},
        {"id": "ft-a2", "status": "completed"}, {"id": "ft-b3"}])
    lines = [f"ftctl {command} {word}" for command in sorted(JOB_ID_COMMANDS) for word in ("", "ft-a", "zz")]
    answered = 0
    for line in lines + ["ftctl retrieve --j", "ftctl retr", "ftctl --backend sim retrieve ", "ftctl list "]:
        env = _protocol_env(shell, line, action)
        quick = quick_answer(env)
        if quick is None:
            assert line in ("ftctl retrieve --j", "ftctl retr", "ftctl --backend sim retrieve ",
                            "ftctl list "), line
            continue
        answered += 1
        assert quick == _typer_answer(capsys, monkeypatch, env), (shell, line)
    assert answered == len(lines)


def test_job_id_commands_are_the_commands_whose_argument_is_a_job_id():
    import typer

    from ftctl.app import app

    group = typer.main.get_command(app)
    takes_id = set()
    for name, cmd in group.commands.items():
        arguments = [p for p in cmd.params if p.param_type_name == "argument"]
        if arguments and arguments[0].name in ("job_id", "job_ids"):
            assert arguments[0]._custom_shell_complete is not None, name
            takes_id.add(name)
    assert takes_id == JOB_ID_COMMANDS


def test_cancel_offers_only_jobs_that_have_not_ended(ftctl_home, tab):
    _write_cache(ftctl_home, [{"id": "ft-run", "status": "running"}, {"id": "ft-done", "status": "completed"},
                              {"id": "ft-gone", "status": "cancelled"}, {"id": "ft-new", "status": "pending"}])
    assert [v for v, _ in tab("ftctl cancel ft-")] == ["ft-run", "ft-new"]
    assert len(tab("ftctl retrieve ft-")) == 4


def test_bash_protocol_offers_the_ids_alone(ftctl_home, tab):
    _write_cache(ftctl_home, [{"id": "ft-a1", "status": "running"}, {"id": "ft-b2", "status": "running"}])
    assert tab("ftctl events ft-a", shell="bash") == [("ft-a1", "")]
    assert tab("ftctl events ", shell="bash") == [("ft-a1", ""), ("ft-b2", "")]


@pytest.mark.parametrize("damage", ["not json", "dir", "home is a file", "wrong shape"])
def test_a_damaged_cache_offers_nothing_and_says_nothing(ftctl_home, tab, damage, monkeypatch, tmp_path):
    if damage == "not json":
        ftctl_home.mkdir(parents=True)
        (ftctl_home / "jobs.json").write_text("{not json")
    elif damage == "dir":
        (ftctl_home / "jobs.json").mkdir(parents=True)
    elif damage == "home is a file":
        (tmp_path / "a-file").write_text("x")
        monkeypatch.setenv("FTCTL_HOME", str(tmp_path / "a-file"))
    else:
        ftctl_home.mkdir(parents=True)
        (ftctl_home / "jobs.json").write_text('{"jobs": [1, {"id": 2}, {"id": "ft-ok"}]}')
    offered = tab("ftctl retrieve ")  # the fixture asserts exit 0 and an empty stderr
    assert offered == ([("ft-ok", "")] if damage == "wrong shape" else [])


def _tab_in_a_process(line: str, env: dict[str, str]) -> tuple[str, set[str]]:
    """TAB through a real ``python -m ftctl``; returns stdout and the modules it imported."""
    code = ("import sys, runpy\n"
            "try:\n    runpy.run_module('ftctl', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env, "_FTCTL_COMPLETE": "complete_zsh",
                               "_TYPER_COMPLETE_ARGS": line})
    assert proc.returncode == 0, proc.stderr
    head, _, modules = proc.stderr.rpartition("MODULES ")
    assert head == "", head
    return proc.stdout, set(modules.split())


def test_tab_is_offline_and_cheap_even_with_the_real_backend(ftctl_home, tmp_path):
    _write_cache(ftctl_home, [{"id": "ft-remote", "status": "running", "model": "m"}])
    # the real backend, configured to a port where nothing listens: a network call would hang or fail
    env = {"TOGETHER_API_KEY": "sk-secret-test", "TOGETHER_BASE_URL": "http://127.0.0.1:9",
           "FTCTL_BACKEND": "together"}
    out, modules = _tab_in_a_process("ftctl retrieve ft-", env)
    assert _zsh_candidates(out) == [("ft-remote", "running · m")]
    heavy = {"httpx", "sqlite3", "pydantic", "rich", "ftctl.backends.simulator.store", "ftctl.backends.together"}
    assert not heavy & modules, heavy & modules
    assert "typer" not in modules  # a job id is answered before Typer loads
    # values with descriptions answered by Typer: its Rich rendering of descriptions is replaced
    out, modules = _tab_in_a_process("ftctl list --fields stat", env)
    assert _zsh_candidates(out) == [("status", "job field")]
    assert not heavy & modules, heavy & modules
    assert not (ftctl_home / "simulator.db").exists()


# -- a real bash ----------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_sourced_bash_script_completes_ids_of_jobs_created_earlier(ftctl_proc, tmp_path):
    created = []
    for model in ("Qwen/Qwen3-8B", "Qwen/Qwen3-14B"):
        result = ftctl_proc(*BASE, "-m", model, "-q")
        assert result.exit_code == 0, result.stderr
        created.append(result.stdout.strip())
    # `ftctl` on PATH, as an installed user has it
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "ftctl"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ftctl "$@"\n')
    shim.chmod(0o755)
    session = (f"source {COMPLETIONS / 'ftctl.bash'}\n"
               "COMP_WORDS=(ftctl retrieve ft-); COMP_CWORD=2; COMP_LINE='ftctl retrieve ft-'\n"
               "_ftctl_completion ftctl\n"
               "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
               "complete -p ftctl\n")
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", session], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == created[::-1]
    assert lines[-1] == "complete -o default -F _ftctl_completion ftctl"


# -- static values ----------------------------------------------------------------------------------


def test_fields_complete_after_the_last_comma_for_the_commands_json(tab):
    assert [v for v, _ in tab("ftctl list --fields id,st")] == ["id,status", "id,started_at",
                                                                "id,steps_completed"]
    assert ("step", "checkpoint field") in tab("ftctl checkpoints ft-x --fields ")
    offered = [v for v, _ in tab("ftctl metrics ft-x --fields ")]
    assert offered == ["job_id", "evaluations", "early_stopping", "missing_eval_loss_steps", "failure", "metrics"]
    assert "id" not in [v.split(",")[-1] for v, _ in tab("ftctl retrieve ft-x --fields id,")]


def test_every_completed_field_is_accepted(ftctl, tab):
    job_id = _create(ftctl, "-m", MODEL)
    for command, kind in (("retrieve", "job"), ("events", "event"), ("checkpoints", "checkpoint")):
        names = [v for v, _ in tab(f"ftctl {command} {job_id} --fields ")]
        result = ftctl(command, job_id, "--fields", ",".join(names))
        assert result.exit_code == 0, result.stderr
        rows = result.json()
        assert list((rows[0] if isinstance(rows, list) else rows)) == names, kind


def test_static_values_complete(tab):
    assert [v for v, _ in tab("ftctl create --sim-scenario ")] == list(PRESETS)
    assert dict(tab("ftctl create --sim-scenario pl")) == {"plateau": PRESETS["plateau"][1]}
    assert tab("ftctl create --sim-scenario ./my") == []  # the shell falls back to file names
    assert [v for v, _ in tab("ftctl sim serve --scenario ")] == list(PRESETS)
    assert [v for v, _ in tab("ftctl sim serve --fields ")] == ["url", "home", "speed", "faults"]
    assert [v for v, _ in tab("ftctl list --color ")] == ["auto", "always", "never"]
    assert [v for v, _ in tab("ftctl --backend ")] == ["sim", "together"]
    assert [v for v, _ in tab("ftctl completion ")] == list(SHELLS)
    assert [v for v, _ in tab("ftctl create --training-method ")] == ["sft", "dpo"]
    assert [v for v, _ in tab("ftctl create --lr-scheduler-type ")] == ["cosine", "linear"]
    assert [v for v, _ in tab("ftctl create --train-on-inputs ")] == ["true", "false", "auto"]
    assert "retrieve" in [v for v, _ in tab("ftctl ret")]


def test_every_completed_create_value_is_accepted(ftctl, tab):
    for option in ("--training-method", "--lr-scheduler-type", "--train-on-inputs"):
        for value, _ in tab(f"ftctl create {option} "):
            result = ftctl("create", "-t", "f", "-m", MODEL, option, value, "--dry-run")
            assert result.exit_code == 0, (option, value, result.stderr)
    for preset, _ in tab("ftctl create --sim-scenario "):
        result = ftctl(*BASE[:5], "--n-evals", "4", "-m", MODEL, "--sim-scenario", preset, "-q")
        assert result.exit_code == 0, (preset, result.stderr)
