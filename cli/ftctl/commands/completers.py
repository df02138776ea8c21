"""What the shell offers at TAB: job ids from the local cache, ``--fields`` names, fixed choices.

Each completer runs in a fresh ``ftctl`` process at every TAB (the scripts in ``completions/`` are
shims that call back into ftctl), so they stay cheap: no network, no sqlite, no pydantic, no Rich.
They never raise and never print: whatever goes wrong, the shell gets no candidates (and falls
back to file names) rather than an error on the user's command line.
"""

from __future__ import annotations

import re
from typing import Any, Callable

Candidates = list[tuple[str, str]]


def job_ids(ctx: Any, incomplete: str) -> Candidates:
    """Recent jobs from ``jobs.json`` under ``FTCTL_HOME``, newest first, with status and model.

    ``cancel`` is offered only the jobs not already known to have ended (an ended status is final)."""
    try:
        from ftctl.backend import TERMINAL_STATUSES
        from ftctl.config import home
        from ftctl.local_state import LocalState

        skip_ended = _command(ctx) == "cancel"
        out = []
        for job in LocalState(home()).recent():
            if not job["id"].startswith(incomplete):
                continue
            status = str(job.get("status") or "")
            if skip_ended and status in TERMINAL_STATUSES:
                continue
            created = str(job.get("created_at") or "")[:16].replace("T", " ")
            out.append((job["id"], " · ".join(p for p in (status, str(job.get("model") or ""), created) if p)))
        return out
    except Exception:  # noqa: BLE001 - a TAB must never fail
        return []


def field_names(ctx: Any, incomplete: str) -> Candidates:
    """``--fields a,b,<TAB>``: the names valid for this command's JSON, after the last comma."""
    try:
        from ftctl.commands.common import OUTPUT_KINDS
        from ftctl.output.fields import KINDS, names, parse

        kinds = OUTPUT_KINDS.get(_command(ctx), ())
        done, comma, last = incomplete.rpartition(",")
        chosen = set(parse(done))
        doc = {name: kind for kind in reversed(kinds) for name in KINDS[kind]}
        return [(done + comma + name, doc[name].replace("_", " ") + " field") for name in names(kinds)
                if name.startswith(last) and name not in chosen]
    except Exception:  # noqa: BLE001
        return []


def scenarios(incomplete: str) -> Candidates:
    """``--sim-scenario``: the presets; none matching lets the shell complete a file name."""
    try:
        from ftctl.simulator.scenarios import PRESETS

        return [(name, about) for name, (_, about) in PRESETS.items() if name.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def choices(*values: str) -> Callable[[str], list[str]]:
    """A completer for a fixed set of values."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


def _command(ctx: Any) -> str:
    return str(getattr(getattr(ctx, "command", None), "name", "") or "")


def register_shells() -> None:
    """Make TAB work with Typer's ``--install-completion/--show-completion`` options removed.

    Those options guess the shell and print the wrong script when the guess fails (research-cli-ux
    §2.1); ``ftctl completion SHELL`` replaces them. Removing them (``add_completion=False``) also
    skips Typer's registration of its shell classes, so do it here. Typer passes every candidate's
    description through Rich (~100 ms of imports at each TAB, and line breaks at 80 columns);
    ours are plain text already, so a whitespace clean-up is all they need. Both hooks are Typer
    internals (Typer is pinned below 0.29); tests/test_completion.py fails if they stop working.
    """
    from typer import _completion_classes as classes

    classes.completion_init()
    classes._sanitize_help_text = _plain  # type: ignore[attr-defined]


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
