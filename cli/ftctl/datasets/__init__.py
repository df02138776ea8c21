"""Fine-tuning data files, offline: the vendor's semantic check (``check``) and what a file implies
for a job's length (``plan``). Standard library only, so the simulator and the CLI can both use it."""

from ftctl.datasets.check import FileProblem, FileReport, check_path

__all__ = ["FileProblem", "FileReport", "check_path"]
