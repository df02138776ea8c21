"""Operations on jobs, for the commands: checks before anything is sent, the backend call, and
what ftctl remembers locally. Returns data; never prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ftctl.errors import InvalidInput

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
    from ftctl.backend import Backend
    from ftctl.backends.simulator.scenarios import Scenario
    from ftctl.wire import MetricsQuery, Wire
    from ftctl.create_request import CreateOptions
    from ftctl.local_state import LocalState

_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_job_id(job_id: str) -> str:
    """Refuse ids that cannot be a job's before they reach a URL path or the store."""
    if not _JOB_ID.fullmatch(job_id or ""):
        shown = job_id if len(job_id) <= 60 else job_id[:57] + "..."
        raise InvalidInput(f"job id {shown!r} is not a job id: expected letters, digits, '.', '_', ':' "
                           "or '-', at most 128 characters (like ft-9a8b7c6d-...)")
    return job_id


@dataclass
class Created:
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    job: Wire | None = None  # None on a dry run


def create(backend_name: str, open_backend: Callable[[Scenario | None], Backend], local: LocalState | None,
           options: CreateOptions, *, scenario: str | None = None, dry_run: bool = False) -> Created:
    """Build and check the request; send it unless ``dry_run``. ``open_backend`` is called only
    once every check has passed, so bad input never opens a connection or a store; it receives the
    simulator-only scenario, which never travels through the ``Backend`` interface."""
    from ftctl.backends import load_scenario
    from ftctl.create_request import build_body
    from ftctl.request_checks import check_body

    body = build_body(options)
    warnings = check_body(body)
    loaded = load_scenario(backend_name, scenario)
    result = Created(body, warnings)
    if dry_run:
        return result
    backend: Backend = open_backend(loaded)
    result.job = backend.create(body)
    if local is not None:
        local.remember([result.job], sent=body)
    return result


def retrieve(backend: Backend, local: LocalState | None, job_id: str) -> Wire:
    job = backend.retrieve(check_job_id(job_id))
    if local is not None:
        local.remember([job])
    return job


def list_jobs(backend: Backend, local: LocalState | None, *, limit: int | None = None) -> list[Wire]:
    jobs = backend.list()
    if local is not None:
        local.remember(jobs)
    return jobs[:limit] if limit else jobs


def cancel(backend: Backend, local: LocalState | None, job_id: str) -> Wire:
    job = backend.cancel(check_job_id(job_id))
    if local is not None:
        local.remember([job])
    return job


def events(backend: Backend, job_id: str, *, types: list[str] | None = None) -> list[Wire]:
    if types and not all(t.strip() for t in types):
        raise InvalidInput("--type must name an event type, such as early_stopped or refund (got '')")
    rows = backend.events(check_job_id(job_id))
    if types:
        wanted = {t.lower() for t in types}
        rows = [e for e in rows if str(e.get("type") or "").lower() in wanted]
    return rows


def checkpoints(backend: Backend, job_id: str) -> list[Wire]:
    return backend.checkpoints(check_job_id(job_id))


def metrics(backend: Backend, local: LocalState | None, job_id: str,
            query: MetricsQuery) -> tuple[Wire, list[Wire], Analysis]:
    """The job, its raw metrics rows, and their reading through the rule."""
    from ftctl.analysis import analyse

    job = backend.retrieve(check_job_id(job_id), events=False)
    rows = backend.metrics(job_id, query)
    sent = local.sent(job_id) if local is not None else None
    return job, rows, analyse(job, rows, sent=sent)


def metrics_json(job_id: str, analysis: Analysis) -> dict[str, Any]:
    """``metrics --json``: ``{"job_id", "evaluations", "early_stopping"}`` (cli-contract.md)."""
    return {
        "job_id": job_id,
        "evaluations": [{"eval": e.eval, "step": e.step, "eval_loss": e.eval_loss} for e in analysis.evaluations],
        "early_stopping": analysis.early_stopping(),
        "missing_eval_loss_steps": [e.step for e in analysis.evaluations if e.missing],
    }
