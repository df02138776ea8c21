"""metrics ID: a job's evaluations through the early-stopping rule: the eval_loss chart with the
best and halt steps marked, the evaluation table, and why early stopping fired or not; or the
rows as JSON, or the chart as an image."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import FROM_FILE, OPTIONAL_JOB_ID
from ftctl.output.render import Shown

FILTERS = "Filters (passed to the API)"
VIEW = "What to show"


def register(app: typer.Typer) -> None:
    command(app, "metrics", output=("metrics", "metrics_response"),
            help="Show a job's evaluations through the early-stopping rule: the eval_loss chart with the best "
                 "and halt steps marked, the evaluation table, and why early stopping fired or not.")(metrics)


def metrics(
    session: Session,
    job_id: OPTIONAL_JOB_ID = None,
    global_step_from: Annotated[Optional[int], typer.Option(
        min=0, help="Only rows from this training step on.", rich_help_panel=FILTERS, show_default=False)] = None,
    global_step_to: Annotated[Optional[int], typer.Option(
        min=0, help="Only rows up to this training step.", rich_help_panel=FILTERS, show_default=False)] = None,
    logged_at_from: Annotated[Optional[str], typer.Option(
        metavar="ISO-8601", help="Only rows logged at or after this time (2026-01-31T12:00:00Z).",
        rich_help_panel=FILTERS, show_default=False)] = None,
    logged_at_to: Annotated[Optional[str], typer.Option(
        metavar="ISO-8601", help="Only rows logged at or before this time.", rich_help_panel=FILTERS,
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
) -> Shown:
    from ftctl.errors import InvalidInput
    from ftctl.wire import MetricsQuery

    query = MetricsQuery(global_step_from, global_step_to, logged_at_from, logged_at_to, resolution)
    if from_file is not None and query.params():  # a filter given
        raise InvalidInput("the --global-step/--logged-at/--resolution filters are passed to the API; "
                           "they do not apply to --from-file")
    if plot is not None:
        from ftctl.output.plot_image import check_path

        check_path(plot)
    run = session.service.load_run(job_id, from_file, query)
    from ftctl.output.report import train_points

    points = train_points(run.rows) if train else []
    if train and not points:
        session.term.note("No training rows with train/loss in this history: the chart shows eval_loss only.")
    if plot is not None:
        from ftctl.output.plot_image import write

        target = write(run.analysis, plot, train=points, title=run.job_id)
        session.term.note(f"Wrote {target}")
    if raw:
        return Shown({"metrics": run.rows}, kind="metrics_response")
    from ftctl.jobs import metrics_json

    def human(term) -> None:
        from ftctl.output import report

        report.show(term, run.analysis, job=run.job if term.is_tty else None, train=points,
                    chart=chart, table=table, explain=explain, all_evaluations=all_evaluations)

    return Shown(lambda: metrics_json(run.job_id, run.analysis), human)  # 100,000 rows only for --json
