"""Help screens a new user can read (issue 12, "help cuts the tool's own flags").

Every command's --help, found by walking the command tree, at 60, 80 and 120 columns: every option
name appears whole (Typer used to print ``--early-stopping,--…``), every option and argument has a
description, and nothing is cut with an ellipsis. Plus: bare ``ftctl`` is help without an empty
``Error:`` line, and the long spellings hidden from --help still work.
"""

from __future__ import annotations

import re

import pytest
from kit import MODEL
import typer

from ftctl.app import app


def _commands():
    root = typer.main.get_command(app)
    out = [((), root)]

    def walk(path, group):
        for name in group.list_commands(None):
            cmd = group.get_command(None, name)
            if cmd.hidden:
                continue
            out.append(((*path, name), cmd))
            if hasattr(cmd, "list_commands"):
                walk((*path, name), cmd)

    walk((), root)
    return out


COMMANDS = _commands()


def _visible(cmd):
    return [p for p in cmd.params if not getattr(p, "hidden", False)]


def test_the_walk_finds_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"create", "retrieve", "list", "cancel", "events", "checkpoints", "metrics", "wait", "explain",
            "completion", "sim", "sim serve"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "ftctl" for p, _ in COMMANDS])
def test_every_option_has_a_description(path, cmd):
    missing = [p.name for p in _visible(cmd) if not (getattr(p, "help", None) or "").strip()]
    assert missing == [], f"ftctl {' '.join(path)}: no description for {missing}"


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) or "ftctl" for p, _ in COMMANDS])
def test_help_shows_every_option_name_whole(ftctl, path, cmd, columns):
    result = ftctl(*path, "--help", env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= columns
    for param in _visible(cmd):
        for name in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if not name.startswith("-"):
                name = param.metavar or name.upper()  # an argument is shown by its metavar
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), \
                f"{name} not shown whole at {columns} columns:\n{text}"


def test_help_paragraphs_are_not_hard_wrapped_in_the_source(ftctl):
    """A paragraph wraps at the terminal's width, not where the source broke its lines: at 200
    columns the create help's early-stopping paragraph is one line."""
    text = ftctl("create", "--help", env={"COLUMNS": "200"}).stdout
    (line,) = [x for x in text.splitlines() if "Early stopping halts" in x]
    assert "promotes the best checkpoint and refunds the unused steps" in line


@pytest.mark.parametrize("argv", [(), ("sim",)])
def test_bare_ftctl_prints_help_and_no_empty_error(ftctl, argv):
    result = ftctl(*argv)
    assert result.exit_code == 2
    assert "Usage: ftctl" in result.stdout
    assert "Error" not in result.stderr


@pytest.mark.parametrize("alias,name,value,field", [
    ("--early-stopping-patience", "--patience", "3", "early_stopping_patience"),
    ("--early-stopping-min-delta", "--min-delta", "0.01", "early_stopping_min_delta"),
    ("--early-stopping-warmup-evals", "--warmup-evals", "2", "early_stopping_warmup_evals"),
    ("--lr", "--learning-rate", "0.0003", "learning_rate"),
])
def test_hidden_long_spellings_still_work(ftctl, alias, name, value, field):
    base = ("create", "-t", "f", "-v", "v", "-m", MODEL, "--n-evals", "10", "--early-stopping", "--dry-run")
    by_alias, by_name = ftctl(*base, alias, value), ftctl(*base, name, value)
    assert by_alias.exit_code == by_name.exit_code == 0, by_alias.stderr
    assert by_alias.json() == by_name.json()
    assert str(by_alias.json()[field]) == value
    both = ftctl(*base, alias, value, name, "9")
    assert both.exit_code == 2 and f"{name} and {alias} are one setting" in both.stderr


def test_the_old_early_stopping_spellings_still_work(ftctl):
    base = ("create", "-t", "f", "-v", "v", "-m", MODEL, "--dry-run")
    assert ftctl(*base, "--early-stopping-enabled").json()["early_stopping_enabled"] is True
    assert ftctl(*base, "--early-stopping", "--no-early-stopping").json()["early_stopping_enabled"] is False
