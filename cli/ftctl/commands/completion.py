"""completion SHELL (issue 5)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
