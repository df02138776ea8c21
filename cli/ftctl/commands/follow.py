"""wait ID, and --wait on create/retrieve (issue 3)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing registered yet."""
