"""How files look: ``ftctl files list`` and ``retrieve`` on a terminal, tab-separated rows when piped."""

from __future__ import annotations

import time
from typing import Any

from ftctl.output.terminal import Terminal

_FLAGS = {  # validation_report flags, in words
    "dataset_has_sample_weights": "sample weights", "dataset_has_message_weights": "message weights",
    "dataset_is_multimodal": "images", "dataset_has_tools": "tool calls",
    "dataset_has_parallel_tool_calls": "parallel tool calls", "dataset_has_reasoning": "reasoning"}


def size(n: Any) -> str:
    if not isinstance(n, int):
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return ""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def file_list(term: Terminal, files: list[dict[str, Any]]) -> None:
    if not term.is_tty:
        term.rows([[f.get("id"), f.get("filename"), f.get("bytes"), f.get("purpose"), f.get("processing_status"),
                    when(f.get("created_at"))] for f in files])
        return
    if not files:
        term.note("No files yet. Upload one with: ftctl files upload PATH")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("ID", "NAME", "SIZE", "PURPOSE", "STATUS", "CREATED"):
        table.add_column(name, overflow="fold", justify="right" if name == "SIZE" else "left")
    for f in files:
        table.add_row(str(f.get("id")), str(f.get("filename") or ""), size(f.get("bytes")),
                      str(f.get("purpose") or ""), str(f.get("processing_status") or ""), when(f.get("created_at")))
    term.show(table)


def report_words(file: dict[str, Any]) -> list[str]:
    """The processing status and the validation report as sentences."""
    status = file.get("processing_status")
    report = file.get("validation_report") or {}
    if status in (None, ""):
        return ["Not validated (files of this purpose skip validation)."]
    if status == "COMPLETED":
        parts = [f"Valid: {report.get('nlines', '?')} examples"]
        if report.get("dataset_format"):
            parts[0] += f", {str(report['dataset_format']).lower()} format"
        found = [words for key, words in _FLAGS.items() if report.get(key)]
        if found:
            parts.append("with " + ", ".join(found))
        return [" ".join(parts) + "."]
    if status == "INVALID_FORMAT":
        return ["Invalid: the server refused this file; no job can train on it.",
                f"  {report.get('error') or 'no reason given'}",
                "  Fix the file, check it with 'ftctl files check PATH', and upload it again."]
    if status == "FAILED":
        return ["Failed: the server could not process this file (not a problem in the data); upload it again."]
    return [f"Processing ({status}): the server is still validating it."]


def file(term: Terminal, f: dict[str, Any]) -> None:
    lines = [("ID", f.get("id")), ("Name", f.get("filename")), ("Size", size(f.get("bytes"))),
             ("Type", f.get("FileType")), ("Purpose", f.get("purpose")), ("Created", when(f.get("created_at"))),
             ("Status", f.get("processing_status") or "not validated")]
    for label, value in lines:
        term.write(f"{label + ':':<9}{'' if value is None else value}")
    for line in report_words(f):
        term.write(line)
