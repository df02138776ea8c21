"""Which checkpoint ``ftctl download`` fetches, where it saves it, and the fetch itself (through
``ftctl.transfer``). Returns data; never prints.

By default it is the checkpoint the job shipped: for an early-stopped job the best step, which the
API promoted to the final model (``early-stopping.md``); otherwise the last step. ``ID:STEP`` asks
for a saved checkpoint instead. The archive's file name is the output model's name (without the
user's prefix), ``-checkpoint-STEP`` for an explicit step, ``-adapter`` for an adapter, ``.tar.zst``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftctl.errors import InvalidInput, JobFailed, NotFound, NotReady
from ftctl.wire import FAILED_STATUSES

if TYPE_CHECKING:
    from ftctl.backend import Backend
    from ftctl.transfer import Fetched, Progress
    from ftctl.wire import Wire

CHECKPOINT_TYPES = ("merged", "adapter", "default")
_WITH_STEP = re.compile(r"(.+):(\d+)")


@dataclass(frozen=True)
class Choice:
    job: Wire
    step: int | None  # the step the archive holds, when the job says
    explicit: bool  # asked for with ID:STEP
    checkpoint: str  # the API's query value: merged, adapter, model_output_path (or default)
    why: str  # one line: which step and why


def parse_target(text: str) -> tuple[str, int | None]:
    """``ft-ID`` or ``ft-ID:STEP``."""
    from ftctl.jobs import check_job_id

    match = _WITH_STEP.fullmatch(text or "")
    if match:
        step = int(match[2])
        if step < 1:
            raise InvalidInput(f"the step in {text!r} must be a whole number >= 1")
        return check_job_id(match[1]), step
    return check_job_id(text), None


def api_checkpoint(job: Wire, checkpoint_type: str) -> str:
    """The vendor client's mapping (``tg ft download -c``): a full-training job has one kind of
    checkpoint, model_output_path; a LoRA job's default is merged."""
    if checkpoint_type not in CHECKPOINT_TYPES:
        raise InvalidInput(f"--checkpoint-type must be merged, adapter or default (got {checkpoint_type!r})")
    kind = str((job.get("training_type") or {}).get("type", "")).lower()
    if kind == "full":
        if checkpoint_type != "default":
            raise InvalidInput(f"--checkpoint-type {checkpoint_type} applies to LoRA jobs only; {job['id']} is "
                               "full training (use default)")
        return "model_output_path"
    if kind == "lora":
        return "merged" if checkpoint_type == "default" else checkpoint_type
    return checkpoint_type


def choose(backend: Backend, job_id: str, step: int | None, checkpoint_type: str = "default") -> Choice:
    """The checkpoint to fetch, after checking that there is one: an unknown job or step is exit 6,
    a job still running exit 3, a job that ended without a model exit 5."""
    job = backend.retrieve(job_id, events=False)
    status = str(job.get("status"))
    if status in FAILED_STATUSES:
        raise JobFailed(f"job {job_id} ended {status}: it has no model to download")
    if status != "completed":
        raise NotReady(f"job {job_id} is {status}: its model can be downloaded once it has completed",
                       hint=f"ftctl wait {job_id} && ftctl download {job_id}")
    checkpoint = api_checkpoint(job, checkpoint_type)
    if step is not None:
        steps = sorted({c.get("step") for c in backend.checkpoints(job_id) if isinstance(c.get("step"), int)})
        if step not in steps:
            raise NotFound(f"job {job_id} has no checkpoint at step {step} (its checkpoints: "
                           f"{', '.join(map(str, steps)) or 'none'})")
        return Choice(job, step, True, checkpoint, f"Downloading the checkpoint at step {step} of {job_id}, as asked.")
    done, total = job.get("steps_completed"), job.get("total_steps")
    best = job.get("early_stopping_best_step")
    if job.get("early_stopped") and isinstance(best, int):
        metric = job.get("early_stopping_best_metric")
        why = (f"Downloading step {best}: early stopping halted {job_id} at step {done} and promoted its best "
               f"checkpoint" + (f" (eval_loss {metric})." if metric is not None else "."))
        return Choice(job, best, False, checkpoint, why)
    why = f"Downloading step {done}: the final model of {job_id}" + \
          (f" (it trained all {total} steps)." if done == total else ".")
    return Choice(job, done if isinstance(done, int) else None, False, checkpoint, why)


def archive_name(model_output_name: str | None, job_id: str, *, step: int | None, adapter: bool) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", (model_output_name or job_id).split("/")[-1]).strip(".-") or job_id
    return stem + (f"-checkpoint-{step}" if step is not None else "") + ("-adapter" if adapter else "") + ".tar.zst"


def destination(choice: Choice, output: str | None, *, force: bool) -> Path:
    """Where the archive goes: ``-o`` (a file, or a directory to put the default name in), else
    the default name in the current directory. An existing file needs ``force``."""
    name = archive_name(choice.job.get("model_output_name"), choice.job["id"],
                        step=choice.step if choice.explicit else None, adapter=choice.checkpoint == "adapter")
    if output is None:
        dest = Path(name)
    else:
        given = Path(output).expanduser()
        if given.is_dir():
            dest = given / name
        elif output.endswith(("/", "\\")):
            raise InvalidInput(f"-o {output}: no such directory")
        else:
            dest = given
            if not dest.parent.is_dir():
                raise InvalidInput(f"-o {output}: the directory {dest.parent} does not exist")
    dest = dest.absolute()
    if dest.is_dir():
        raise InvalidInput(f"{dest} is a directory")
    if dest.exists() and not force:
        raise InvalidInput(f"{dest} already exists; pass --force to overwrite it")
    return dest


def fetch(backend: Backend, choice: Choice, dest: Path, *, force: bool = False, progress: Progress | None = None,
          retries: int = 2, delay: float = 1.0) -> Fetched:
    from ftctl.transfer import fetch as fetch_to

    step = choice.step if choice.explicit else None
    identity: dict[str, Any] = {"job_id": choice.job["id"], "step": step, "checkpoint": choice.checkpoint,
                                "backend": backend.name}

    def open_at(offset: int):
        return backend.open_download(choice.job["id"], step=step, checkpoint=choice.checkpoint, start=offset)

    return fetch_to(open_at, dest, identity, force=force, progress=progress, retries=retries, delay=delay)
