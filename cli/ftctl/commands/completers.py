"""What the shell offers at TAB: job ids from the local cache, ``--fields`` names, fixed choices.

Each completer runs in a fresh ``ftctl`` process at every TAB (the scripts in ``completions/`` are
shims that call back into ftctl), so they stay cheap: no network, no sqlite, no pydantic, no Rich.
They never raise and never print: whatever goes wrong, the shell gets no candidates (and falls
back to file names) rather than an error on the user's command line.

The commonest TAB, a job id right after the command (``ftctl retrieve ft-<TAB>``), is answered by
``quick_answer`` before Typer is even imported: a third of the time of the full round-trip.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

Candidates = list[tuple[str, str]]

# The commands whose first argument is a job id (``JOB_ID`` in commands/jobs.py), for
# ``quick_answer``; tests/commands/test_completion.py keeps it equal to the command tree.
JOB_ID_COMMANDS = frozenset({"retrieve", "cancel", "events", "metrics", "checkpoints", "wait", "explain", "report",
                             "compare", "download", "delete"})


def job_ids(ctx: Any, incomplete: str) -> Candidates:
    """Recent jobs from ``jobs.json`` under ``FTCTL_HOME``, newest first, with status and model."""
    return _recent_jobs(_command(ctx), incomplete)


def _recent_jobs(command: str, incomplete: str) -> Candidates:
    """``cancel`` is offered only the jobs not already known to have ended (an ended status is final)."""
    try:
        from ftctl.config import home
        from ftctl.local_state import LocalState

        ended: frozenset[str] = frozenset()
        if command == "cancel":
            from ftctl.wire import TERMINAL_STATUSES as ended
        out = []
        for job in LocalState(home()).recent():
            if not job["id"].startswith(incomplete):
                continue
            status = str(job.get("status") or "")
            if status in ended:
                continue
            created = str(job.get("created_at") or "")[:16].replace("T", " ")
            out.append((job["id"], " · ".join(p for p in (status, str(job.get("model") or ""), created) if p)))
        return out
    except Exception:  # noqa: BLE001 - a TAB must never fail
        return []


def field_names(ctx: Any, incomplete: str) -> Candidates:
    """``--fields a,b,<TAB>``: the names valid for this command's JSON, after the last comma."""
    try:
        from ftctl.output.fields import KINDS, names, parse

        # set on each command's callback by ``commands.common.command``
        kinds = getattr(getattr(getattr(ctx, "command", None), "callback", None), "output_kinds", ())
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
        from ftctl.backends.simulator.scenarios import PRESETS

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

    Those options guess the shell and print the wrong script when the guess fails;
    ``ftctl completion SHELL`` replaces them. Removing them (``add_completion=False``) also
    skips Typer's registration of its shell classes, so do it here. Typer passes every candidate's
    description through Rich (~100 ms of imports at each TAB, and line breaks at 80 columns);
    ours are plain text already, so a whitespace clean-up is all they need. Both hooks are Typer
    internals (Typer is pinned below 0.29); tests/commands/test_completion.py fails if they stop working.
    """
    from typer import _completion_classes as classes

    classes.completion_init()
    classes._sanitize_help_text = _plain  # type: ignore[attr-defined]


def _plain(text: str) -> str:
    return " ".join(text.split())


def quick_answer(env: Mapping[str, str]) -> tuple[str, int] | None:
    """The shell's answer (text for stdout, exit code) when TAB asks for the job id of one of
    ``JOB_ID_COMMANDS``, written the way Typer's shell classes write it; None for any other TAB,
    which Typer then answers."""
    shell = env.get("_FTCTL_COMPLETE", "").partition("_")[2]
    try:
        if shell == "bash":
            words = _split(env["COMP_WORDS"])
            cword = int(env["COMP_CWORD"])
            args, incomplete = words[1:cword], (words[cword] if cword < len(words) else "")
        elif shell in ("zsh", "fish"):
            line = env.get("_TYPER_COMPLETE_ARGS", "")
            args = _split(line)[1:]
            incomplete = args.pop() if args and not line.endswith(" ") else ""
        elif shell in ("powershell", "pwsh"):
            incomplete = env.get("_TYPER_COMPLETE_WORD_TO_COMPLETE", "")
            words = _split(env.get("_TYPER_COMPLETE_ARGS", ""))
            args = words[1:-1] if incomplete else words[1:]
        else:
            return None
    except (KeyError, ValueError):
        return None
    if len(args) != 1 or args[0] not in JOB_ID_COMMANDS or incomplete.startswith("-"):
        return None
    found = _recent_jobs(args[0], incomplete)
    if shell == "bash":
        return "\n".join(value for value, _ in found) + "\n", 0
    if shell == "zsh":
        if not found:
            return "_files\n", 0
        items = "\n".join(f'"{_zsh_escape(v)}":"{_plain(_zsh_escape(h))}"' if h else f'"{_zsh_escape(v)}"'
                          for v, h in found)
        return f"_arguments '*: :(({items}))'\n", 0
    if shell == "fish":
        action = env.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":
            return "", 0 if found else 1
        lines = [f"{v}\t{_plain(h)}" if h else v for v, h in found] if action == "get-args" else []
        return "\n".join(lines) + "\n", 0
    return "\n".join(f"{v}:::{_plain(h) if h else ' '}" for v, h in found) + "\n", 0


def _split(line: str) -> list[str]:
    """Words as Typer splits them (shlex, POSIX); plain words need no shlex (nor its imports)."""
    if not any(c in line for c in "'\"\\"):
        return [w for w in line.replace("\t", " ").replace("\r", " ").replace("\n", " ").split(" ") if w]
    import shlex

    return shlex.split(line)  # an unfinished quote raises ValueError: Typer answers instead


def _zsh_escape(text: str) -> str:
    return (text.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`")
            .replace(":", r"\\:"))
