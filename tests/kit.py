"""What many tests share, in one place: where things are, the worked example and the start of a
create command."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent  # the test tree's root: kit, served and workers live here
ROOT = TESTS.parent  # the repository

# The vendor's worked example (docs/early-stopping.md §7): 5 epochs of 24 steps, 10 evaluations,
# patience 2 -> best step 48 (eval_loss 0.4213), halt at step 72, 48 of 120 steps refunded.
WORKED = [2.0, 1.5, 1.2, 0.4213, 0.45, 0.47, 0.40, 0.39, 0.38, 0.37]
MODEL = "Qwen/Qwen3.5-9B"  # in the simulator's catalogue, as in the README's first command
BASE = ["create", "-t", "file-train", "-v", "file-val", "-m", MODEL]


def create_job(ftctl, *args: str, env=None) -> str:
    """Create a job with ``BASE`` and ``args`` through the ``ftctl`` fixture; its id."""
    result = ftctl(*BASE, *args, "-q", env=env)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def answer_on_a_terminal(argv: list[str], prompt: bytes, answer: bytes) -> tuple[bool, int, str]:
    """Run ``ftctl ARGV`` on a pseudo-terminal; when the output shows ``prompt`` and ``[y/N]``,
    type ``answer``. Whether it was asked, the exit code, and what the terminal showed."""
    import os
    import select
    import subprocess
    import sys
    import time

    primary, secondary = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ftctl", *argv], stdin=secondary, stdout=secondary,
                            stderr=secondary, env={**os.environ, "TERM": "dumb"}, close_fds=True)
    os.close(secondary)
    seen, answered = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and prompt in seen and b"[y/N]" in seen:
            os.write(primary, answer + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(primary)
    return answered, proc.returncode, seen.decode(errors="replace")
