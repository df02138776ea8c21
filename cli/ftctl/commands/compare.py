"""compare ID ID...: several runs side by side: the settings that differ, how each ended, and one
eval_loss chart with every run's best and halt."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ftctl.commands.common import Session, command
from ftctl.commands.options import FROM_FILES, JOB_IDS
from ftctl.output.render import Shown

COMPARE_HELP = """Compare runs: the settings that differ (patience, min_delta, warmup, learning rate, epochs,
evaluations, batch size, ...), how each ended (halt step, best step and eval_loss, steps run and
refunded, cost when the API gives it), and one chart with every run's eval_loss, each with its own
glyph, best (star) and halt (cross). Saved histories work too (--from-file, repeatable).
"""


def register(app: typer.Typer) -> None:
    command(app, "compare", output="comparison", help=COMPARE_HELP)(compare)


def compare(
    session: Session,
    job_ids: JOB_IDS = None,
    plot: Annotated[Optional[str], typer.Option(
        "--plot", metavar="FILE.png|FILE.svg", show_default=False,
        help="Also write the chart as an image (needs matplotlib: pip install 'ftctl\\[plot]').")] = None,
    from_file: FROM_FILES = None,
) -> Shown:
    from ftctl import comparison
    from ftctl.errors import InvalidInput

    ids, files = list(job_ids or []), list(from_file or [])
    if len(ids) + len(files) < 2:
        raise InvalidInput("compare needs two runs or more: job ids and/or --from-file FILE "
                           f"(got {len(ids) + len(files)})")
    if plot is not None:
        from ftctl.output.plot_image import check_path

        check_path(plot)
    runs = session.service.load_runs(ids, files)
    items = [comparison.Compared(r.job_id, r.analysis) for r in runs]
    differing = comparison.differing(items)
    if plot is not None:
        from ftctl.output.comparison import label
        from ftctl.output.plot_image import write_many

        target = write_many([(label(c, n), c.analysis) for n, c in enumerate(items)], plot,
                            title="eval_loss: " + ", ".join(label(c, n) for n, c in enumerate(items)))
        session.term.note(f"Wrote {target}")

    def human(term) -> None:
        from ftctl.output.comparison import show

        show(term, items, differing)

    return Shown(comparison.compare(items), human)
