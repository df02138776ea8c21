"""The commonest scripted reads, answered without building the command tree: exactly
``retrieve ID --json``, ``list --json``, ``events ID --json`` and ``checkpoints ID --json`` (``--json``
anywhere on the line). Importing Typer and registering every command costs more than such a read
itself (~60 ms of ~100 on the simulator); here the commands' own session, service calls and
renderer run, so the answer is the same bytes and the same exit code
(tests/contract/test_quick_reads.py compares each with the tree's). Any other word on the line
goes through the tree as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ftctl.commands.session import Session, job_view, rows_view

if TYPE_CHECKING:
    from ftctl.environment import Environment
    from ftctl.output.render import Shown

# command: (the kind of object its --json prints, whether it takes a job id, its body)
_READS: dict[str, tuple[str, bool, Callable[..., Shown]]] = {
    "retrieve": ("job", True, lambda s, job_id: job_view(s.service.retrieve(job_id), s.service.sent(job_id))),
    "list": ("job", False, lambda s: rows_view(s.service.list(), "job_list")),
    "events": ("event", True, lambda s, job_id: rows_view(s.service.event_log(job_id).rows, "events")),
    "checkpoints": ("checkpoint", True,
                    lambda s, job_id: rows_view(s.service.checkpoints(job_id), "checkpoints", job_id)),
}


def answer(argv: list[str], environment: Environment | None) -> int | None:
    """The exit code of ``argv`` answered here, or None: not one of the shapes above."""
    words = [a for a in argv if a != "--json"]
    if len(words) == len(argv) or not words or words[0] not in _READS:
        return None
    kind, takes_id, body = _READS[words[0]]
    args = words[1:]
    if len(args) != int(takes_id) or any(a.startswith("-") for a in args):
        return None
    session = Session(json_=True, output=(kind,), environment=environment)
    try:
        session.render(body(session, *args))
    finally:
        session.close()
    return 0
