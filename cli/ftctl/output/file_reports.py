"""The human view of ``files check``: like a linter, a verdict line per file and one
``PATH:LINE: message (rule)`` line per problem on stdout (editors and CI annotators read that
shape), and a one-line summary on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftctl.datasets import FileReport
    from ftctl.output.terminal import Terminal


def show(term: Terminal, reports: list[FileReport], max_errors: int) -> None:
    term.out.write("".join(lines(r, max_errors) for r in reports))
    term.out.flush()
    term.note(summary(reports))


def lines(report: FileReport, max_errors: int) -> str:
    missing = bool(report.errors) and report.errors[0].rule == "not-found"
    out = [] if missing else [verdict(report)]  # for a missing file, its one problem line says it all
    for e in report.errors:
        where = f"{report.path}:{e.line}" if e.line is not None else report.path
        out.append(f"{where}: {e.message} ({e.rule})")
    if report.truncated_errors:
        out.append(f"{report.path}: more problems not shown (the first {max_errors}; --max-errors N for more)")
    return "".join(line + "\n" for line in out)


def verdict(report: FileReport) -> str:
    """``train.jsonl: ok, conversational, 1,200 examples, ~2.3M tokens``."""
    parts = ["ok" if report.ok else "invalid"]
    if report.format:
        parts.append(report.format)
    if report.num_samples:
        parts.append(f"{report.num_samples:,} example{'s' if report.num_samples != 1 else ''}")
        parts.append(f"~{rough(report.approx_tokens)} tokens")
    if not report.ok:
        count = len(report.errors)
        parts.append(f"{count}{'+' if report.truncated_errors else ''} problem{'s' if count != 1 else ''}")
    return f"{report.path}: {', '.join(parts)}"


def rough(n: int) -> str:
    """1234 -> 1.2k, 2_300_000 -> 2.3M: an estimate should look like one."""
    for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def summary(reports: list[FileReport]) -> str:
    files = f"{len(reports)} file{'s' if len(reports) != 1 else ''}"
    bad = sum(not r.ok for r in reports)
    return f"{files} checked: all valid." if not bad else f"{files} checked: {bad} invalid."
