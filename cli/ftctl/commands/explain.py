"""explain ID and what-if replays (issue 3)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
