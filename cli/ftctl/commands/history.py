"""events, checkpoints, metrics: what a job did, step by step."""

from typing import Annotated, List, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.explain import FROM_FILE, OPTIONAL_JOB_ID
from ftctl.commands.jobs import JOB_ID

FILTERS = "Filters (passed to the API)"
VIEW = "What to show"


def register(app: typer.Typer) -> None:
    command(app, "events", output="event",
            help="Show a job's event log, with its early_stopped and refund entries.")(events)
    command(app, "checkpoints", output="checkpoint",
            help="List a job's saved checkpoints; the final one is the promoted model.")(checkpoints)
    command(app, "metrics", output=("metrics", "metrics_response"),
            help="Show a job's evaluations through the early-stopping rule: the eval_loss chart with the best "
                 "and halt steps marked, the evaluation table, and why early stopping fired or not.")(metrics)


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
    job_id: OPTIONAL_JOB_ID = None,
    global_step_from: Annotated[Optional[int], typer.Option(min=0, rich_help_panel=FILTERS, show_default=False)] = None,
    global_step_to: Annotated[Optional[int], typer.Option(min=0, rich_help_panel=FILTERS, show_default=False)] = None,
    logged_at_from: Annotated[Optional[str], typer.Option(metavar="ISO-8601", rich_help_panel=FILTERS,
                                                          show_default=False)] = None,
    logged_at_to: Annotated[Optional[str], typer.Option(metavar="ISO-8601", rich_help_panel=FILTERS,
                                                        show_default=False)] = None,
    resolution: Annotated[Optional[int], typer.Option(
        help="Uniformly sampled training rows (eval rows are always all).", min=1, rich_help_panel=FILTERS,
        show_default=False)] = None,
    raw: Annotated[bool, typer.Option(help="Print the API's raw {\"metrics\": [...]} response as JSON.")] = False,
    train: Annotated[bool, typer.Option("--train", help="Draw the training loss under eval_loss.",
                                        rich_help_panel=VIEW)] = False,
    plot: Annotated[Optional[str], typer.Option(
        "--plot", metavar="FILE.png|FILE.svg", rich_help_panel=VIEW, show_default=False,
        help="Also write the chart as an image (needs matplotlib: pip install 'ftctl\\[plot]').")] = None,
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="The eval_loss chart.",
                                        rich_help_panel=VIEW)] = True,
    table: Annotated[bool, typer.Option("--table/--no-table", help="The evaluation table.",
                                        rich_help_panel=VIEW)] = True,
    explain: Annotated[bool, typer.Option("--explain/--no-explain", help="Why early stopping fired, or not.",
                                          rich_help_panel=VIEW)] = True,
    all_evaluations: Annotated[bool, typer.Option(
        "--all-evaluations", rich_help_panel=VIEW,
        help="Every evaluation in the table; a longer history than 40 otherwise keeps the first, the last and "
             "those around the best and the halt (--json always has them all).")] = False,
    from_file: FROM_FILE = None,
) -> None:
    from ftctl.wire import MetricsQuery
    from ftctl.commands.explain import metrics_command

    query = MetricsQuery(global_step_from, global_step_to, logged_at_from, logged_at_to, resolution)
    metrics_command(session, job_id, query, filtered=any(v is not None for v in query.__dict__.values()),
                    raw=raw, train=train, plot=plot, from_file=from_file, chart=chart, table=table,
                    explain=explain, all_evaluations=all_evaluations)
