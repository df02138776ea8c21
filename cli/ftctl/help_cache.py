"""``ftctl --help`` and ``ftctl CMD --help`` from a cache: Typer builds the whole command tree and
Rich draws the help on every run (most of ``--help``'s cost), yet the text depends only on what
is keyed here: ftctl's version and sources, Typer's and Rich's installs, the argv, the terminal
(is stdout one, its size) and the environment variables Rich reads. The first run draws it as
always while recording stdout byte for byte; later runs copy that. Best effort: any trouble with
the cache directory means the help is drawn as usual.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

# Everything Rich and Typer read from the environment to decide colours, width and style.
_ENV = ("COLUMNS", "LINES", "TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE",
        "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES", "TYPER_USE_RICH", "_TYPER_FORCE_DISABLE_TERMINAL",
        "TERMINAL_WIDTH", "_TYPER_TERMINAL_WIDTH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING",
        "FTCTL_FORCE_TTY", "CLICOLOR", "CLICOLOR_FORCE")


def applies(argv: list[str]) -> bool:
    """``--help`` after nothing but command names (``ftctl sim serve --help``)."""
    return bool(argv) and argv[-1] == "--help" and len(argv) <= 3 and all(
        word.replace("-", "").isalnum() and not word.startswith("-") for word in argv[:-1])


def _directory() -> Path:
    home = os.environ.get("FTCTL_HOME")
    if home:
        return Path(home) / "cache"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ftctl"


def _stamp(path: str) -> str:
    """The newest modification time of the ``.py`` files under ``path``."""
    newest = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                newest = max(newest, os.stat(os.path.join(root, name)).st_mtime_ns)
    return str(newest)


def _installed(name: str) -> str:
    from importlib.util import find_spec

    spec = find_spec(name)
    origin = spec.origin if spec is not None else None
    return f"{origin}:{os.stat(origin).st_mtime_ns}" if origin else "-"


def key(argv: list[str], stream: IO[str]) -> str:
    import hashlib

    from ftctl import __version__

    try:
        tty = stream.isatty()
        size = os.get_terminal_size(stream.fileno()) if tty else None
    except (OSError, ValueError, AttributeError):
        tty, size = False, None
    parts = [__version__, sys.version, "\0".join(argv), _stamp(os.path.dirname(__file__)),
             _installed("typer"), _installed("rich"), str(tty), str(size), getattr(stream, "encoding", ""),
             *(f"{name}={os.environ.get(name)}" for name in _ENV)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def read(cache_key: str) -> str | None:
    try:
        return (_directory() / f"help-{cache_key}.txt").read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def save(cache_key: str, text: str) -> None:
    directory = _directory()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = directory / f".help-{cache_key}.{os.getpid()}"
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, directory / f"help-{cache_key}.txt")  # atomic: readers see all or nothing
    except OSError:
        pass


class Recorder:
    """stdout as it was, recording what is written through it (Rich still sees the real terminal)."""

    def __init__(self, real: IO[str]) -> None:
        self.real = real
        self.parts: list[str] = []

    def write(self, text: str | bytes) -> int:
        self.parts.append(text.decode("utf-8") if isinstance(text, bytes) else text)
        return self.real.write(text)  # type: ignore[arg-type]

    @property
    def buffer(self) -> _BytesRecorder:  # Click writes bytes through it
        return _BytesRecorder(self)

    def text(self) -> str:
        return "".join(self.parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _BytesRecorder:
    def __init__(self, owner: Recorder) -> None:
        self.owner = owner

    def write(self, data: bytes) -> int:
        self.owner.real.flush()
        self.owner.parts.append(bytes(data).decode("utf-8"))
        return self.owner.real.buffer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.owner.real.buffer, name)
