"""sim serve: the simulator over HTTP (issue 4)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
