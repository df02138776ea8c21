"""download and delete: a completed job's model to disk, and a job removed for good."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands import completers
from ftctl.commands.common import Session, command
from ftctl.commands.options import JOB_ID, YES
from ftctl.output.render import Shown

# One line per paragraph: the help screen wraps them to the terminal's width.
DOWNLOAD_HELP = "\n\n".join([
    "Download a completed job's model as a .tar.zst archive; print its path.",
    "By default: the checkpoint the job shipped. For an early-stopped job that is its best step (the "
    "checkpoint early stopping promoted), else the last step; one line on stderr says which. ID:STEP "
    "downloads a saved checkpoint instead (see `ftctl checkpoints ID`).",
    "The archive streams to .NAME.part beside the target and is renamed to NAME only when complete and the "
    "size matches. An interrupted download resumes where it stopped, in the same run or when the same command "
    "runs again. An existing file is never overwritten without --force.",
    "Exit codes: 3 the job has not ended yet (wait for it first), 5 it ended without a model (failed or "
    "cancelled), 6 no such job or no checkpoint at that step, 2 bad input or the target exists.",
])

DELETE_HELP = "\n\n".join([
    "Delete a job and everything it produced (checkpoints, model). It cannot be undone.",
    "A job still running cannot be deleted: cancel it first. Asks for confirmation on a terminal; needs --yes "
    "otherwise. Also forgets the job in ftctl's local records.",
])


def register(app: typer.Typer) -> None:
    command(app, "download", output="download", help=DOWNLOAD_HELP)(download)
    command(app, "delete", output="deleted", help=DELETE_HELP)(delete)


def download(
    session: Session,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID[:STEP]", show_default=False,
                                          help="The job (ft-...), and optionally a checkpoint step.",
                                          autocompletion=completers.job_ids)],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="PATH", show_default=False,
        help="Save to this file, or into this directory (default: the model's name, in the current directory).")]
    = None,
    checkpoint_type: Annotated[str, typer.Option(
        "--checkpoint-type", "-c", metavar="merged|adapter|default",
        help="LoRA jobs: the merged model or the adapter alone (default: merged). Full training: default only.",
        autocompletion=completers.choices("merged", "adapter", "default"))] = "default",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> Shown:
    from ftctl import download as core
    from ftctl.download import CHECKPOINT_TYPES
    from ftctl.errors import InvalidInput
    from ftctl.output.progress import download_bar

    job_id, step = core.parse_target(job_id)
    if checkpoint_type not in CHECKPOINT_TYPES:  # before anything is sent
        raise InvalidInput(f"--checkpoint-type must be merged, adapter or default (got {checkpoint_type!r})")
    backend = session.backend
    choice = core.choose(backend, job_id, step, checkpoint_type)
    dest = core.destination(choice, output, force=force)
    session.term.note(choice.why)
    retries, delay = _retry_settings(session)
    with download_bar(session.term, dest.name, enabled=not session.json) as progress:
        fetched = core.fetch(backend, choice, dest, force=force, progress=progress, retries=retries, delay=delay)
    if fetched.resumed_from:
        session.term.note(f"Resumed at byte {fetched.resumed_from} of {fetched.size}.")
    saved = {"object": "local", "id": job_id, "filename": str(fetched.path), "size": fetched.size,
             "checkpoint_step": choice.step, "checkpoint_type": choice.checkpoint}
    return Shown(saved, lambda term: term.write(saved["filename"]))  # the path alone: $(ftctl download ID)


def delete(session: Session, job_id: JOB_ID, yes: YES = False) -> Shown | None:
    from ftctl import jobs
    from ftctl.errors import InvalidInput

    jobs.check_job_id(job_id)
    if not yes:
        if not session.term.interactive:
            raise InvalidInput(f"deleting {job_id} needs --yes when stdin and stdout are not both terminals "
                               "(ftctl never prompts in scripts)")
        if not typer.confirm(f"Delete {job_id} and its checkpoints and model? This cannot be undone.",
                             default=False, err=True):
            session.term.note("Not deleted.")
            return None
    answer = session.service.delete(job_id)
    return Shown(answer, lambda term: term.write(str(answer.get("message") or f"Deleted {job_id}.")))


def _retry_settings(session: Session) -> tuple[int, float]:
    """In-run resumes of a broken stream: as many as the HTTP retries (FTCTL_MAX_RETRIES)."""
    if session.config.backend != "together":
        return 2, 1.0
    from ftctl.backends.together import HttpSettings

    settings = HttpSettings.from_env()
    return settings.max_retries, settings.retry_delay
