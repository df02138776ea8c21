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
