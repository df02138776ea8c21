"""``ftctl report --format github`` (and ``wait`` in GitHub Actions): workflow commands the runner
turns into annotations. ``::notice::`` for a completed job with its outcome, ``::warning::`` for
a halt on a non-finite eval_loss, a disagreement between the server and the replay, or a job
still running, ``::error::`` for a job that failed or was cancelled. Rendering only.

GitHub reads workflow commands from a step's stdout. The message is escaped as the runner
requires (``%`` ``\\r`` ``\\n``); a property value (``title``) also escapes ``:`` and ``,``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftctl.output import outcome

if TYPE_CHECKING:
    from ftctl.comparison import Compared


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(level: str, title: str, message: str) -> str:
    return f"::{level} title={escape_property(title)}::{escape_data(message)}"


def lines(c: Compared) -> list[str]:
    job = c.job_id or "saved history"
    title = f"ftctl {job}"
    if outcome.failed(c):
        return [command("error", title, f"{job} {outcome.sentence(c)}")]
    out = []
    if outcome.running(c):
        out.append(command("warning", title, f"{job} is {outcome.sentence(c)}"))
    else:
        out.append(command("notice", title, f"{job} {outcome.status(c)}: {outcome.sentence(c)}"))
    if outcome.non_finite_halt(c):
        out.append(command("warning", title, f"{job} halted on a non-finite eval_loss at step "
                                             f"{c.analysis.halt_step}: check the learning rate and the data"))
    if c.analysis.disagreements:
        from ftctl.output.explanation import disagreement

        out.append(command("warning", title, f"{job}: {disagreement(c.analysis)}"))
    return out


def report(items: list[Compared]) -> str:
    return "".join(line + "\n" for c in items for line in lines(c))
