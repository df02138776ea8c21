"""A download's progress bar: Rich, on stderr, only on a terminal; it disappears when done.
Rendering only: it receives ``(bytes on disk, total)`` from ``ftctl.transfer``'s callback."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from ftctl.output.terminal import Terminal


@contextmanager
def download_bar(term: Terminal, name: str, *, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled or not term.is_tty:
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    console = Console(file=term.err, force_terminal=True, no_color=not term.color, highlight=False)
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(f"Downloading {name}", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update
