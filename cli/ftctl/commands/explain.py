"""explain ID: why early stopping fired (or did not), checked against the server, and what other
settings would have done. Also the body of ``metrics`` (chart, table, explanation, image), which
shares the loading of a run from the backend or from a saved file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.jobs import JOB_ID

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
    from ftctl.wire import MetricsQuery

OPTIONAL_JOB_ID = Annotated[Optional[str], JOB_ID.__metadata__[0]]
FROM_FILE = Annotated[Optional[str], typer.Option(
    "--from-file", metavar="FILE", show_default=False,
    help="Read a saved history instead of asking the API (no network): the output of "
         "`ftctl metrics ID --json`, or the API's {\"metrics\": [...]} (`ftctl metrics ID --raw`); - for stdin.")]
WHAT_IF = "What if (replay the history under other settings)"
MAX_SWEEP = 200


def register(app: typer.Typer) -> None:
    command(app, "explain", output="explanation", help=EXPLAIN_HELP)(explain)


EXPLAIN_HELP = """Explain why early stopping fired, or did not, for a job: the best step, the halt step, the
non-improving streak evaluation by evaluation, what was promoted and refunded, and whether a
replay of the history agrees with the server's verdict.

With --patience, --min-delta or --warmup-evals, also replay the history under those settings
(the job's own for the others): where it would have halted, which step would have been promoted,
and the steps saved or spent. Give several values (--patience 1,2,3,5) for a sweep table.
"""


def explain(
    session: Session,
    job_id: OPTIONAL_JOB_ID = None,
    patience: Annotated[Optional[str], typer.Option(
        "--patience", metavar="N[,N...]", rich_help_panel=WHAT_IF, show_default=False,
        help="Patience to replay with; several values make a sweep.")] = None,
    min_delta: Annotated[Optional[str], typer.Option(
        "--min-delta", metavar="D[,D...]", rich_help_panel=WHAT_IF, show_default=False,
        help="min_delta to replay with; several values make a sweep.")] = None,
    warmup_evals: Annotated[Optional[str], typer.Option(
        "--warmup-evals", metavar="W[,W...]", rich_help_panel=WHAT_IF, show_default=False,
        help="Warmup evaluations to replay with; several values make a sweep.")] = None,
    from_file: FROM_FILE = None,
) -> None:
    candidates = _candidates(patience, min_delta, warmup_evals)  # bad values: exit 2 before any fetch
    run = load_run(session, job_id, from_file)
    analysis = run.analysis
    what_ifs = [analysis.what_if(s) for s in _settings(candidates, analysis)] if candidates else []
    if session.json:
        out: dict[str, Any] = {"job_id": run.job_id, "early_stopping": analysis.early_stopping()}
        if candidates:
            out["what_if"] = [w.to_json() for w in what_ifs]
        session.emit(out)
        return
    from ftctl.output import explanation
    from ftctl.output.report import unicode_ok

    term = session.term
    explanation.write(term, explanation.explain(analysis, unicode=unicode_ok(term)))
    if not what_ifs:
        return
    term.write("")
    if len(what_ifs) == 1:
        explanation.write(term, [explanation.Line(0, explanation.what_if_sentence(what_ifs[0]))])
        return
    rows = explanation.sweep_rows(what_ifs)
    if not term.is_tty:
        term.rows(rows)
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False, title="What if", title_justify="left")
    for name in explanation.SWEEP_HEADER:
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    term.show(table)


def _split(text: str | None, kind: type, option: str) -> list[Any]:
    if text is None:
        return [None]
    from ftctl.errors import InvalidInput

    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(kind(part))
        except ValueError:
            raise InvalidInput(f"{option} takes {'integers' if kind is int else 'numbers'} separated by commas "
                               f"(got {text!r})") from None
    return values


def _candidates(patience: str | None, min_delta: str | None, warmup: str | None) -> list[tuple]:
    """Every combination asked for, checked with create's rules; None stands for the job's own."""
    if patience is None and min_delta is None and warmup is None:
        return []
    import itertools

    from ftctl.analysis import check_settings
    from ftctl.errors import InvalidInput

    combos = list(itertools.product(_split(patience, int, "--patience"), _split(min_delta, float, "--min-delta"),
                                    _split(warmup, int, "--warmup-evals")))
    if len(combos) > MAX_SWEEP:
        raise InvalidInput(f"a sweep is limited to {MAX_SWEEP} combinations of settings (got {len(combos)})")
    for p, d, w in combos:
        check_settings(1 if p is None else p, 0.0 if d is None else d, 0 if w is None else w)
    return combos


def _settings(combos: list[tuple], analysis: Analysis) -> list:
    from ftctl import early_stopping as es

    own = analysis.settings
    return [es.Settings(own.patience if p is None else p, own.min_delta if d is None else d,
                        own.warmup_evals if w is None else w) for p, d, w in combos]


class Run:
    """A job's history and its reading: from the backend, or from a saved file."""

    def __init__(self, job_id: str | None, job: dict[str, Any] | None, rows: list[dict[str, Any]],
                 analysis: Analysis) -> None:
        self.job_id, self.job, self.rows, self.analysis = job_id, job, rows, analysis


def load_run(session: Session, job_id: str | None, from_file: str | None,
             query: MetricsQuery | None = None) -> Run:
    from ftctl.errors import InvalidInput

    if from_file is not None:
        if job_id is not None:
            raise InvalidInput(f"give a job id or --from-file, not both (got {job_id!r} and {from_file!r})")
        from ftctl.analysis import analyse
        from ftctl.saved_history import read

        saved = read(from_file)
        return Run(saved.job.get("id"), None, saved.rows, analyse(saved.job, saved.rows, sent=saved.sent))
    if job_id is None:
        raise InvalidInput("give a job id, or --from-file FILE to read a saved history")
    from ftctl import jobs
    from ftctl.wire import MetricsQuery

    job, rows, analysis = jobs.metrics(session.backend, session.local, job_id, query or MetricsQuery())
    return Run(job.get("id", job_id), job, rows, analysis)


def metrics_command(session: Session, job_id: str | None, query: MetricsQuery, *, filtered: bool, raw: bool,
                    train: bool, plot: str | None, from_file: str | None, chart: bool, table: bool,
                    explain: bool, all_evaluations: bool = False) -> None:
    """``ftctl metrics``: the chart, the evaluation table and the explanation (or JSON, or an image)."""
    from ftctl.errors import InvalidInput

    if from_file is not None and filtered:
        raise InvalidInput("the --global-step/--logged-at/--resolution filters are passed to the API; "
                           "they do not apply to --from-file")
    if plot is not None:
        from ftctl.output.plot_image import check_path

        check_path(plot)
    run = load_run(session, job_id, from_file, query)
    from ftctl.output.report import train_points

    points = train_points(run.rows) if train else []
    if train and not points:
        session.term.note("No training rows with train/loss in this history: the chart shows eval_loss only.")
    if plot is not None:
        from ftctl.output.plot_image import write

        target = write(run.analysis, plot, train=points, title=run.job_id)
        session.term.note(f"Wrote {target}")
    if raw:
        session.emit({"metrics": run.rows}, kind="metrics_response")
    elif session.json:
        from ftctl import jobs

        session.emit(jobs.metrics_json(run.job_id, run.analysis))
    else:
        from ftctl.output import report

        report.show(session.term, run.analysis, job=run.job if session.term.is_tty else None, train=points,
                    chart=chart, table=table, explain=explain, all_evaluations=all_evaluations)
