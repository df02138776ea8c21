"""Worker processes for the concurrency tests. Inside a worker, ``call`` runs ftctl's entry point in
that process with its output captured (hundreds of commands cannot each afford a Python start-up);
in the test, ``created_by`` waits for the workers and collects the job ids they printed."""

from __future__ import annotations

import contextlib
import io
import subprocess

from ftctl.__main__ import run


def call(*args: str) -> tuple[int, str, str]:
    """Run ``ftctl ARGS``: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(list(args))
    return code, out.getvalue(), err.getvalue()


def created_by(workers: list[subprocess.Popen]) -> list[str]:
    """Every id the workers printed as ``created ID``; each worker must have ended with ``ok``."""
    created = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        assert out.rstrip().endswith("ok")
        created += [line.split()[1] for line in out.splitlines() if line.startswith("created ")]
    return created
