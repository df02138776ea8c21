"""Fine-tuning data files, offline: the vendor's semantic check (``check``) and what a file implies
for a job's length (``plan``). Standard library only, so the simulator and the CLI can both use it."""

from typing import Any

__all__ = ["FileProblem", "FileReport", "check_path"]


def __getattr__(name: str) -> Any:
    """The checker, loaded when first named: a simulator read that needs only ``plan`` (a job's
    checkpoint spacing) does not import it."""
    if name in __all__:
        from ftctl.datasets import check

        return getattr(check, name)
    raise AttributeError(f"module 'ftctl.datasets' has no attribute {name!r}")
