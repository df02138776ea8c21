"""The shell completion scripts: generated from Typer's templates, committed in ``completions/``.

Each script is a shim that calls ``ftctl`` back at every TAB, so it does not go stale when
commands change; what can drift is Typer's templates on an upgrade. ``tests/commands/test_completion.py``
regenerates the scripts and compares them with the committed files; to rewrite the files:

    python -m ftctl.completion_scripts [DIR]      (DIR defaults to ./completions)
"""

from __future__ import annotations

import sys
from pathlib import Path

PROG = "ftctl"
COMPLETE_VAR = "_FTCTL_COMPLETE"
# shell -> the file name each shell's loader expects (zsh's compinit wants `_ftctl` on $fpath)
FILES = {"bash": "ftctl.bash", "zsh": "_ftctl", "fish": "ftctl.fish", "powershell": "ftctl.ps1"}
SHELLS = tuple(FILES)
REGENERATE = "python -m ftctl.completion_scripts"
# Typer's PowerShell script also rebinds Tab for the whole session (MenuComplete): not ours to change.
_POWERSHELL_GLOBAL_TAB = "Set-PSReadLineKeyHandler -Chord Tab -Function MenuComplete\n"


def script(shell: str) -> str:
    """The completion script for ``shell`` (one of ``SHELLS``), ending with a newline."""
    from typer._completion_shared import get_completion_script

    text = get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)
    return text.replace(_POWERSHELL_GLOBAL_TAB, "") + "\n"


def drift(folder: Path) -> list[str]:
    """The files in ``folder`` that differ from what ``script`` generates now."""
    stale = []
    for shell, name in FILES.items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != script(shell):
            stale.append(name)
    return stale


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in FILES.items():
        path = folder / name
        path.write_text(script(shell), encoding="utf-8", newline="\n")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else Path("completions")
    for path in write(folder):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
