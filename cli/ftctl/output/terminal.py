"""The one object that writes: data to stdout, everything else to stderr.

Decides once per run whether stdout is a terminal (Rich layouts) or not (plain, tab-separated,
untruncated, undecorated), and whether colour is on (``--color``, ``NO_COLOR``, ``FORCE_COLOR``,
``CLICOLOR``, ``CLICOLOR_FORCE``, ``TERM=dumb``). Rich is imported only when something is drawn.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import IO, TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from rich.console import Console

COLOR_CHOICES = ("auto", "always", "never")
PLAIN_WIDTH = 100  # fixed width for drawings when stdout is not a terminal, so output is stable
ENV_FORCE_TTY = "FTCTL_FORCE_TTY"  # treat stdout as a terminal (tests, screenshots), like GH_FORCE_TTY


def color_enabled(flag: str, stream_is_tty: bool, env: Mapping[str, str] | None = None) -> bool:
    """``--color`` first; then ``NO_COLOR`` (any value) beats the forcing variables
    (``CLICOLOR_FORCE``, ``FORCE_COLOR``: set and not 0), which beat ``TERM=dumb`` and
    ``CLICOLOR=0``; otherwise colour exactly when the stream is a terminal."""
    env = os.environ if env is None else env
    if flag == "always":
        return True
    if flag == "never" or env.get("NO_COLOR"):
        return False
    if env.get("CLICOLOR_FORCE", "") not in ("", "0") or env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    if env.get("TERM") == "dumb" or env.get("CLICOLOR") == "0":
        return False
    return stream_is_tty


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Terminal:
    def __init__(self, *, color: str = "auto", stdout: IO[str] | None = None,
                 stderr: IO[str] | None = None) -> None:
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        forced = os.environ.get(ENV_FORCE_TTY, "")
        self.is_tty = forced not in ("", "0") or _isatty(self.out)
        self.color = color_enabled(color, self.is_tty)
        self.err_color = color_enabled(color, _isatty(self.err))
        self._console: Console | None = None

    @property
    def width(self) -> int:
        if not self.is_tty:
            return PLAIN_WIDTH
        forced = os.environ.get(ENV_FORCE_TTY, "")
        if forced.isdigit() and int(forced) > 1:
            return int(forced)
        return shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns

    @property
    def interactive(self) -> bool:
        """May ftctl ask a question? Only when stdin and stdout are both terminals."""
        return self.is_tty and _isatty(sys.stdin)

    # -- stdout: data ---------------------------------------------------------------------------

    def write(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")

    def rows(self, rows: list[list[Any]]) -> None:
        """Plain rows: tab-separated, no header, nothing cut (for pipes and scripts)."""
        self.out.write("".join("\t".join(map(_cell, row)) + "\n" for row in rows))

    @property
    def console(self) -> Console:
        """A Rich console on stdout, for terminal layouts."""
        if self._console is None:
            from rich.console import Console

            # Our colour decision is final: Rich would drop colour on TERM=dumb even under --color always.
            system = ("auto" if self.is_tty and os.environ.get("TERM") != "dumb" else "standard") \
                if self.color else None
            self._console = Console(file=self.out, force_terminal=self.is_tty, width=self.width,
                                    no_color=not self.color, color_system=system,
                                    highlight=False, emoji=False, soft_wrap=not self.is_tty,
                                    markup=False)  # API text is data: "[x]" in a model name stays as is
        return self._console

    def show(self, renderable: Any) -> None:
        self.console.print(renderable)

    # -- stderr: everything else ----------------------------------------------------------------

    def _say(self, prefix: str, code: str, message: str) -> None:
        if prefix and self.err_color:
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        self.err.write(f"{prefix}{message}\n")
        self.err.flush()

    def note(self, message: str) -> None:
        self._say("", "", message)

    def warn(self, message: str) -> None:
        self._say("Warning: ", "33", message)

    def error(self, message: str) -> None:
        self._say("Error: ", "31;1", message)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    text = value if type(value) is str else str(value)
    if "\t" in text or "\n" in text:  # a cell must stay one field on one line
        text = text.replace("\t", " ").replace("\n", " ")
    return text
