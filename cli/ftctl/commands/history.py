"""events, checkpoints, metrics: what a job did, step by step."""

from typing import Annotated, List, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.jobs import JOB_ID

FILTERS = "Filters (passed to the API)"


def register(app: typer.Typer) -> None:
    command(app, "events", output="event",
            help="Show a job's event log, with its early_stopped and refund entries.")(events)
    command(app, "checkpoints", output="checkpoint",
            help="List a job's saved checkpoints; the final one is the promoted model.")(checkpoints)
    command(app, "metrics", output=("metrics", "metrics_response"),
            help="Show a job's evaluations through the early-stopping rule: the best step, "
                 "the halt step and why.")(metrics)


def events(session: Session, job_id: JOB_ID,
           type_: Annotated[Optional[List[str]], typer.Option(
               "--type", metavar="TYPE", help="Only events of this type (repeatable), e.g. early_stopped.",
               show_default=False)] = None) -> None:
    from ftctl import jobs

    rows = jobs.events(session.backend, job_id, types=type_)
    if session.json:
        session.emit(rows)
        return
    from ftctl.output import views

    views.events(session.term, rows)


def checkpoints(session: Session, job_id: JOB_ID) -> None:
    from ftctl import jobs

    rows = jobs.checkpoints(session.backend, job_id)
    if session.json:
        session.emit(rows)
        return
    from ftctl.output import views

    views.checkpoints(session.term, rows, job_id)


def metrics(
    session: Session,
    job_id: JOB_ID,
    global_step_from: Annotated[Optional[int], typer.Option(rich_help_panel=FILTERS, show_default=False)] = None,
    global_step_to: Annotated[Optional[int], typer.Option(rich_help_panel=FILTERS, show_default=False)] = None,
    logged_at_from: Annotated[Optional[str], typer.Option(metavar="ISO-8601", rich_help_panel=FILTERS,
                                                          show_default=False)] = None,
    logged_at_to: Annotated[Optional[str], typer.Option(metavar="ISO-8601", rich_help_panel=FILTERS,
                                                        show_default=False)] = None,
    resolution: Annotated[Optional[int], typer.Option(
        help="Uniformly sampled training rows (eval rows are always all).", min=1, rich_help_panel=FILTERS,
        show_default=False)] = None,
    raw: Annotated[bool, typer.Option(help="Print the API's raw {\"metrics\": [...]} response as JSON.")] = False,
) -> None:
    from ftctl import jobs
    from ftctl.backend import MetricsQuery

    query = MetricsQuery(global_step_from, global_step_to, logged_at_from, logged_at_to, resolution)
    job, rows, analysis = jobs.metrics(session.backend, session.local, job_id, query)
    if raw:
        session.emit({"metrics": rows}, kind="metrics_response")
    elif session.json:
        session.emit(jobs.metrics_json(job["id"], analysis))
    else:
        from ftctl.output import views

        views.job(session.term, job)
        views.evaluations(session.term, analysis)
