"""explain ID: why early stopping fired (or did not), checked against the server, and what other
settings would have done."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import FROM_FILE, OPTIONAL_JOB_ID
from ftctl.output.render import Shown

if TYPE_CHECKING:
    from ftctl.analysis import Analysis
WHAT_IF = "What if (replay the history under other settings)"
MAX_SWEEP = 200


def register(app: typer.Typer) -> None:
    command(app, "explain", output="explanation", help=EXPLAIN_HELP)(explain)


EXPLAIN_HELP = """Explain why early stopping fired, or did not, for a job: the best step, the halt step, the non-improving streak evaluation by evaluation, what was promoted and refunded, and whether a replay of the history agrees with the server's verdict.

With --patience, --min-delta or --warmup-evals, also replay the history under those settings (the job's own for the others): where it would have halted, which step would have been promoted, and the steps saved or spent. Give several values (--patience 1,2,3,5) for a sweep table.
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
) -> Shown:

    candidates = _candidates(patience, min_delta, warmup_evals)  # bad values: exit 2 before any fetch
    run = session.service.load_run(job_id, from_file)
    analysis = run.analysis
    what_ifs = [analysis.what_if(s) for s in _settings(candidates, analysis)] if candidates else []
    from ftctl.wire import failure

    data: dict[str, Any] = {"job_id": run.job_id, "early_stopping": analysis.early_stopping(),
                            "failure": failure(analysis.job)}
    if candidates:
        data["what_if"] = [w.to_json() for w in what_ifs]

    def human(term) -> None:
        from ftctl.output import explanation

        explanation.show(term, analysis, what_ifs)

    return Shown(data, human)


def _split(text: str | None, kind: type, option: str) -> list[Any]:
    if text is None:
        return [None]
    from ftctl.errors import InvalidInput

    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            if not part.isascii():  # int() would take "١٢" for 12
                raise ValueError(part)
            values.append(kind(part))
        except ValueError:
            raise InvalidInput(f"{option} takes {'integers' if kind is int else 'numbers'} separated by commas "
                               f"(got {text!r})") from None
        if kind is float and values[-1] in (float("inf"), float("-inf")) and "inf" not in part.lower():
            raise InvalidInput(f"{option} {part} is beyond the largest number a float holds (about 1.8e308)")
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
        try:
            check_settings(1 if p is None else p, 0.0 if d is None else d, 0 if w is None else w)
        except InvalidInput as exc:  # create's rules, in this command's flags
            from ftctl.create_request import in_flag_words

            exc.message = in_flag_words(exc.message)
            raise
    return combos


def _settings(combos: list[tuple], analysis: Analysis) -> list:
    from ftctl import early_stopping as es

    own = analysis.settings
    return [es.Settings(own.patience if p is None else p, own.min_delta if d is None else d,
                        own.warmup_evals if w is None else w) for p, d, w in combos]
