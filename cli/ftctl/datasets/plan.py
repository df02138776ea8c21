"""What a training file implies for a job's length: tokens, steps, evaluations, checkpoints.

The rules (``docs/datasets.md`` "From a file to a job's steps"); pure functions, no I/O:

- **Tokens** (``approx_tokens``): ceil(characters / 4) over the text a model reads: message
  contents, ``text``, ``prompt``/``completion``, reasoning, tool-call names and arguments. Four
  characters per token is the usual rule of thumb for English with a BPE tokenizer. JSON syntax,
  chat-template tokens, tool schemas and images are not counted: vendor tokenizers differ, and the
  file check must not depend on one. A Parquet file holds its tokens, so it is counted exactly.
- **Sequences per epoch**: without packing, one per example (longer ones are truncated to
  ``max_seq_length``). With packing, examples are concatenated into rows of ``max_seq_length``
  tokens: ceil(tokens / max_seq_length), but never more rows than examples, since a truncated
  example fits in one row, and at least one.
- **Steps per epoch**: ceil(sequences / batch_size); a last partial batch is still a step.
- **Total steps**: n_epochs × steps per epoch, where an epoch has at least ceil(n_evals / n_epochs)
  steps, so that each evaluation has a step of its own (ftctl's rule: a tiny file with many
  evaluations would otherwise evaluate several times at one step).
- **Evaluations**: evaluation i (1-based) at step round(i × total_steps / n_evals), rounding half to
  even (``cli-contract.md`` "Schedule"; ``ftctl.early_stopping.evaluation_step``).
- **Checkpoints**: n_checkpoints evenly spaced, the last at total_steps (the simulator's schedule).
- **Early stopping**: the earliest patience halt is evaluation max(W, 1) + P (``early-stopping.md``
  A11: with warmup the first improvement can come at eval 1 but the streak only counts after W;
  without, the first evaluation sets the best). Halting there refunds total_steps minus its step,
  the most a patience halt can refund. (A NaN/inf eval_loss halts at once, whatever P and W.)
"""

from __future__ import annotations

from typing import NamedTuple

CHARS_PER_TOKEN = 4
# max_seq_length when a job does not give one (ftctl's assumption, and the simulator's: the vendor's
# default depends on the model).
DEFAULT_MAX_SEQ_LENGTH = 8192


def approx_tokens(chars: int) -> int:
    """Approximate tokens of ``chars`` characters of text: ceil(chars / 4)."""
    return -(-chars // CHARS_PER_TOKEN)


def sequences_per_epoch(num_samples: int, approx_tokens: int, *, max_seq_length: int, packing: bool) -> int:
    """Training rows in one epoch: one per example, or the examples packed into max_seq_length rows."""
    if num_samples <= 0:
        return 0
    if not packing:
        return num_samples
    return max(1, min(num_samples, -(-approx_tokens // max_seq_length)))


def steps_per_epoch(num_samples: int, approx_tokens: int, *, batch_size: int, max_seq_length: int,
                    packing: bool) -> int:
    """Optimizer steps in one epoch: ceil(sequences / batch_size)."""
    if batch_size < 1 or max_seq_length < 1:
        raise ValueError("batch_size and max_seq_length must be >= 1")
    sequences = sequences_per_epoch(num_samples, approx_tokens, max_seq_length=max_seq_length, packing=packing)
    return -(-sequences // batch_size)


def evenly_spaced(i: int, total: int, count: int) -> int:
    """round(i × total / count) in exact integers, half to even (as Python's ``round``)."""
    q, r = divmod(i * total, count)
    if 2 * r > count or (2 * r == count and q % 2):
        return q + 1
    return q


def checkpoint_steps(total_steps: int, n_checkpoints: int) -> tuple[int, ...]:
    """The n_checkpoints evenly spaced saves, the last at total_steps (it is the final model)."""
    if n_checkpoints <= 0 or total_steps <= 0:
        return ()
    return tuple(sorted({evenly_spaced(j, total_steps, n_checkpoints) for j in range(1, n_checkpoints + 1)} - {0}))


class Plan(NamedTuple):  # not a dataclass: the simulator's job reads import this module
    examples: int
    approx_tokens: int
    steps_per_epoch: int
    total_steps: int
    eval_steps: tuple[int, ...]  # the step of each evaluation
    eval_every: float | None  # total_steps / n_evals (steps between evaluations), None without evals
    checkpoint_steps: tuple[int, ...]
    earliest_halt_eval: int | None  # with early stopping: the first evaluation patience can stop at
    earliest_halt_step: int | None
    max_steps_refunded: int | None  # total_steps - earliest_halt_step

    def to_json(self) -> dict:
        return {"examples": self.examples, "approx_tokens": self.approx_tokens,
                "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                "eval_every": self.eval_every, "eval_steps": list(self.eval_steps),
                "checkpoint_steps": list(self.checkpoint_steps), "earliest_halt_eval": self.earliest_halt_eval,
                "earliest_halt_step": self.earliest_halt_step, "max_steps_refunded": self.max_steps_refunded}


def plan(num_samples: int, approx_tokens: int, *, batch_size: int, max_seq_length: int, packing: bool = True,
         n_epochs: int = 1, n_evals: int = 0, n_checkpoints: int = 1, early_stopping: bool = False,
         patience: int = 2, warmup_evals: int = 1) -> Plan:
    """A job's schedule from its training file's size (the rules in this module's docstring).

    ``patience``/``warmup_evals`` default to the server's defaults (2 and 1)."""
    per_epoch = max(steps_per_epoch(num_samples, approx_tokens, batch_size=batch_size,
                                    max_seq_length=max_seq_length, packing=packing), -(-n_evals // n_epochs))
    total = per_epoch * n_epochs
    evals = tuple(evenly_spaced(i, total, n_evals) for i in range(1, n_evals + 1)) if n_evals > 0 else ()
    checkpoints = checkpoint_steps(total, n_checkpoints)
    halt_eval = halt_step = refund = None
    if early_stopping and evals:
        first = max(warmup_evals, 1) + patience
        if first <= n_evals:
            halt_eval, halt_step = first, evals[first - 1]
            refund = total - halt_step
    return Plan(examples=num_samples, approx_tokens=approx_tokens, steps_per_epoch=per_epoch, total_steps=total,
                eval_steps=evals, eval_every=total / n_evals if n_evals > 0 else None,
                checkpoint_steps=checkpoints, earliest_halt_eval=halt_eval, earliest_halt_step=halt_step,
                max_steps_refunded=refund)
