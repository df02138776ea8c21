"""The one object that writes: data to stdout, everything else to stderr.

Decides once per run whether stdout is a terminal (Rich layouts) or not (plain, tab-separated,
untruncated, undecorated), and whether colour is on (``--color``, ``NO_COLOR``, ``FORCE_COLOR``,
``CLICOLOR``, ``CLICOLOR_FORCE``, ``TERM=dumb``). Rich is imported only when something is drawn.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Mapping

from ftctl.environment import Environment, isatty

if TYPE_CHECKING:
    from rich.console import Console

COLOR_CHOICES = ("auto", "always", "never")
PLAIN_WIDTH = 100  # fixed width for drawings when stdout is not a terminal, so output is stable


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


class Terminal:
    def __init__(self, *, color: str = "auto", environment: Environment | None = None) -> None:
        self.environment = environment = environment or Environment()
        self.out = environment.out
        self.err = environment.err
        self.is_tty = environment.stdout_is_tty()
        self.color = color_enabled(color, self.is_tty, environment.env)
        self.err_color = color_enabled(color, isatty(self.err), environment.env)
        self._console: Console | None = None

    @property
    def width(self) -> int:
        if not self.is_tty:
            return PLAIN_WIDTH
        forced = self.environment.forced_width()
        if forced:
            return forced
        import shutil  # not on the paths that print no table (``--version``, ``--json``)

        return shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns

    @property
    def interactive(self) -> bool:
        """May ftctl ask a question? Only when stdin and stdout are both terminals."""
        return self.is_tty and isatty(self.environment.input)

    # -- stdout: data ---------------------------------------------------------------------------

    def write(self, text: str) -> None:
        text = printable(text)
        self.out.write(text if text.endswith("\n") else text + "\n")

    def rows(self, rows: list[list[Any]]) -> None:
        """Plain rows: tab-separated, no header, nothing cut (for pipes and scripts)."""
        self.out.write("".join("\t".join(map(_cell, row)) + "\n" for row in rows))

    @property
    def console(self) -> Console:
        """A Rich console on stdout, for terminal layouts."""
        if self._console is None:
            # Our colour decision is final: Rich would drop colour on TERM=dumb even under --color always.
            system = ("auto" if self.is_tty and self.environment.env.get("TERM") != "dumb" else "standard") \
                if self.color else None
            self._console = _console_class()(file=self.out, force_terminal=self.is_tty, width=self.width,
                                             no_color=not self.color, color_system=system,
                                             highlight=False, emoji=False, soft_wrap=not self.is_tty,
                                             markup=False)  # API text is data: "[x]" stays as it is
        return self._console

    def show(self, renderable: Any) -> None:
        self.console.print(renderable)

    # -- stderr: everything else ----------------------------------------------------------------

    def _say(self, prefix: str, code: str, message: str) -> None:
        from ftctl.redact import redact  # every note, warning, error and --debug trace line

        message = redact(message)
        if prefix and self.err_color:
            prefix = f"\x1b[{code}m{prefix}\x1b[0m"
        self.err.write(f"{prefix}{printable(message)}\n")
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
    return printable(text)


# -- text from elsewhere reaches the terminal inert -------------------------------------------------

# C0 controls but newline and tab, DEL, C1 controls (U+009B is a CSI of its own) and the bidirectional
# overrides that reorder what a line appears to say. Shown escaped, as Python writes them.
_CONTROLS = [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0), 0x200e, 0x200f,
             *range(0x202a, 0x202f), *range(0x2066, 0x206a)]
_ESCAPES = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _CONTROLS}


# The same characters as JSON's own escapes, for ``--json`` on a terminal: the JSON encoder escapes
# C0 itself, but strict JSON may carry DEL, C1 and the bidi overrides raw, and a terminal obeys them.
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in _CONTROLS if c >= 0x7f}


def inert_json(text: str) -> str:
    """JSON ``text`` that cannot drive a terminal and still decodes to the same value."""
    return text.translate(_JSON_ESCAPES)


def printable(text: str) -> str:
    """``text`` with escape sequences and other control characters shown as ``\\x1b`` and the like,
    so that a job field, an event message or an error from a server cannot drive the terminal."""
    return text if text.isprintable() else text.translate(_ESCAPES)


def _console_class() -> type:
    """A Rich console that escapes control characters in the text it draws, after layout and
    before styling: its own control codes (cursor, colours) are separate segments and pass."""
    from rich.console import Console
    from rich.segment import Segment

    class InertConsole(Console):
        def _render_buffer(self, buffer: Any) -> str:
            return super()._render_buffer(
                seg if seg.control or seg.text.isprintable() else Segment(printable(seg.text), seg.style, seg.control)
                for seg in buffer)

    return InertConsole


# -- the process's standard streams (the entry point sets them up once) -----------------------------

def prepare_streams() -> None:
    """Make the standard streams safe for any environment the process starts in.

    A closed descriptor 0-2 is held open on /dev/null, so no file ftctl opens can take its number;
    stdout and stderr never fail on an encoding (text a non-UTF-8 terminal cannot show is written
    as ``\\xe9`` escapes; drawings pick ASCII glyphs by themselves); a stdout that cannot take the
    output (closed, full) raises ``OutputError`` at the write; stderr is best effort, as there is
    nowhere left to report its own failure.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != fd:
                os.dup2(held, fd)
                os.close(held)
    out, err = sys.stdout, sys.stderr
    for stream in (out, err):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    sys.stdout = _Stream(out if out is not None else _Closed(), "stdout", forgiving=False)  # type: ignore[assignment]
    sys.stderr = _Stream(err if err is not None else _Closed(), "stderr", forgiving=True)  # type: ignore[assignment]


def silence(stream: Any) -> None:
    """Point a failed standard stream at /dev/null, so that what is still buffered drains without
    another error, and the interpreter's own flush at exit succeeds."""
    try:
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except (AttributeError, OSError, ValueError):
        pass


class _Closed:
    """What a standard stream is when its descriptor was closed before ftctl started."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "it is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("closed")


class _Stream:
    """A standard stream whose failures are ftctl's kind of error (stdout) or are swallowed (stderr)."""

    def __init__(self, stream: Any, name: str, *, forgiving: bool) -> None:
        self._stream, self._name, self._forgiving = stream, name, forgiving

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if self._forgiving:
            silence(self._stream)
            return
        from ftctl.errors import BrokenPipe, OutputError

        if isinstance(exc, BrokenPipeError):
            raise BrokenPipe("broken pipe") from None

        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"could not write the output to {self._name}: {reason}") from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
