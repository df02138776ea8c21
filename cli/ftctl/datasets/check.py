"""``check_path``: a streaming check of a fine-tuning file, as a linter reports it.

File-level rules come first, with the vendor's wording (together 2.14 ``check_file``): a regular
file, not empty, at most 50.1 GiB, a known extension (``.jsonl``; ``.parquet``; ``.csv`` only for
``eval``). A JSONL file is then read one line at a time (memory stays flat whatever its size; a line
is capped at ``MAX_LINE_BYTES``) and each line must be UTF-8, one JSON object, and (except for
``purpose="eval"``) a valid record of one format, the same format on every line
(``ftctl.datasets.records``). Unlike the vendor, which stops at the first problem, every line is
checked and up to ``max_errors`` problems are kept, one per line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftctl.datasets import records
from ftctl.datasets.plan import approx_tokens

MAX_FILE_SIZE_GB = 50.1
NUM_BYTES_IN_GB = 2**30
MIN_SAMPLES = 1
# The longest line worth reading: 10 images of 10 MiB in base64, and room for text. Longer lines
# cannot be valid, and reading them whole would break the flat-memory promise.
MAX_LINE_BYTES = records.MAX_IMAGES_PER_EXAMPLE * records.MAX_BASE64_IMAGE_LENGTH + 16 * 2**20
PARQUET_COLUMNS = ("input_ids", "attention_mask", "labels", "position_ids")


@dataclass(frozen=True)
class FileProblem:
    line: int | None  # 1-based; None for a problem with the whole file
    message: str
    rule: str  # short stable id, e.g. "json", "role-turns", "extra-column"


@dataclass
class FileReport:
    path: str
    ok: bool = True
    format: str | None = None  # conversational | instruction | general | preference | parquet
    num_samples: int = 0
    errors: list[FileProblem] = field(default_factory=list)
    size_bytes: int = 0
    approx_tokens: int = 0
    truncated_errors: bool = False  # more problems were found than max_errors

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "format": self.format, "num_samples": self.num_samples,
                "errors": [{"line": e.line, "message": e.message, "rule": e.rule} for e in self.errors],
                "size_bytes": self.size_bytes, "approx_tokens": self.approx_tokens}


class _Collector:
    def __init__(self, report: FileReport, max_errors: int) -> None:
        self.report, self.max_errors = report, max(1, max_errors)

    def add(self, line: int | None, message: str, rule: str) -> None:
        report = self.report
        report.ok = False
        if len(report.errors) < self.max_errors:
            report.errors.append(FileProblem(line, message, rule))
        else:
            report.truncated_errors = True


def check_path(path: str | Path, *, max_errors: int = 100, purpose: str = "fine-tune") -> FileReport:
    """Check one file as Together's client checks it before upload, plus the server's offline rules.

    Never raises for a bad file: every problem is in ``FileReport.errors``."""
    file = Path(path)
    report = FileReport(path=str(path))
    problems = _Collector(report, max_errors)
    try:
        stat = file.stat()
    except OSError:
        stat = None
    if stat is None or not file.is_file():
        problems.add(None, f"File not found or path is not a regular file: {file}", "not-found")
        return report
    report.size_bytes = size = stat.st_size
    if size == 0:
        problems.add(None, "File is empty", "empty")
        return report
    if size > MAX_FILE_SIZE_GB * NUM_BYTES_IN_GB:
        problems.add(None, f"Maximum supported file size is {MAX_FILE_SIZE_GB} GB. Found file with size of "
                           f"{round(size / NUM_BYTES_IN_GB, 3)} GB.", "size")
    suffix = file.suffix
    try:
        if suffix == ".jsonl":
            _check_jsonl(file, purpose, report, problems)
        elif suffix == ".parquet":
            _check_parquet(file, purpose, report, problems)
        elif suffix == ".csv":
            _check_csv(file, purpose, report, problems)
        else:
            problems.add(None, f"Unknown extension of file {file}. Only files with extensions .jsonl, .parquet, "
                               "and .csv are supported.", "extension")
    except OSError as exc:  # unreadable (permissions, a device error): one line, not a traceback
        problems.add(None, f"Cannot read {file}: {exc.strerror or exc}", "unreadable")
    return report


def _check_jsonl(file: Path, purpose: str, report: FileReport, problems: _Collector) -> None:
    check_record, Problem, loads = records.check_record, records.Problem, json.loads
    semantic = purpose != "eval"
    first_format: str | None = None
    chars = samples = n = 0
    with open(file, "rb") as f:
        readline = f.readline
        while True:
            raw = readline(MAX_LINE_BYTES)
            if not raw:
                break
            n += 1
            if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
                _skip_rest_of_line(f)
                samples += 1
                problems.add(n, f"Line {n} is longer than {MAX_LINE_BYTES:,} bytes, more than any valid example "
                                "can be (10 images of 10 MB).", "line-too-long")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                samples += 1
                problems.add(n, f"File is not UTF-8 encoded. Error raised: {exc}.", "utf8")
                continue
            if text.isspace():  # a blank line breaks json.loads, as in the vendor's full check
                problems.add(n, f"Error parsing json payload. Unexpected format on line {n}.", "json")
                continue
            samples += 1
            try:
                record = loads(text)
            except ValueError:
                problems.add(n, f"Error parsing json payload. Unexpected format on line {n}.", "json")
                continue
            if type(record) is not dict:
                problems.add(n, f"Error parsing file. Invalid format on line {n} of the input file. Datasets must "
                                "follow text, conversational, or instruction format. For more information, see "
                                f"{records.DOCS_URL}", "not-an-object")
                continue
            if not semantic:
                continue
            try:
                fmt, count = check_record(record, n)
            except Problem as problem:
                problems.add(n, problem.message, problem.rule)
                continue
            if first_format is None:
                first_format = fmt
            elif fmt != first_format:
                problems.add(n, "All samples in the dataset must have the same dataset format. Got "
                                f"{records.VENDOR_ENUM[first_format]} for the first line and "
                                f"{records.VENDOR_ENUM[fmt]} for the line {n}.", "mixed-formats")
                continue
            chars += count
    report.format = first_format
    report.num_samples = samples
    report.approx_tokens = approx_tokens(chars)
    if samples < MIN_SAMPLES and report.ok:
        problems.add(None, f"Processing {file} resulted in only {samples} samples. Our minimum is {MIN_SAMPLES} "
                           "samples.", "min-samples")


def _skip_rest_of_line(f: Any) -> None:
    while True:
        chunk = f.readline(2**20)
        if not chunk or chunk.endswith(b"\n"):
            return


def _check_parquet(file: Path, purpose: str, report: FileReport, problems: _Collector) -> None:
    """Pre-tokenized data: an ``input_ids`` column and nothing outside ``PARQUET_COLUMNS``. Needs
    pyarrow, which ftctl does not depend on: without it, one problem says so."""
    report.format = "parquet"
    if purpose == "eval":
        problems.add(None, "Parquet files are not supported for eval. Only JSONL and CSV files are supported.",
                     "extension")
        return
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        problems.add(None, "pyarrow is not installed and is required to use parquet files. Please install it via "
                           "`pip install pyarrow`", "parquet")
        return
    try:
        parquet = pq.ParquetFile(str(file))
        columns = parquet.schema_arrow.names
        if "input_ids" not in columns:
            problems.add(None, f"Parquet file {file} does not contain the `input_ids` column.", "parquet")
            return
        for column in columns:
            if column not in PARQUET_COLUMNS:
                problems.add(None, f"Parquet file {file} contains an unexpected column {column}. Only columns "
                                   f"{list(PARQUET_COLUMNS)} are supported.", "parquet")
                return
        report.num_samples = parquet.metadata.num_rows
        tokens = 0
        for batch in parquet.iter_batches(columns=["input_ids"], batch_size=8192):
            tokens += pc.sum(pc.list_value_length(batch.column(0))).as_py() or 0
        report.approx_tokens = tokens  # exact: the file holds the tokens themselves
    except Exception as exc:  # pyarrow's errors for a corrupt file have no common base we can name
        problems.add(None, f"An exception has occurred when loading the Parquet file {file}. Please check the "
                           f"file for corruption. ({type(exc).__name__}: {exc})", "parquet")
        return
    if report.num_samples < MIN_SAMPLES:
        problems.add(None, f"Processing {file} resulted in only {report.num_samples} samples. Our minimum is "
                           f"{MIN_SAMPLES} samples.", "min-samples")


def _check_csv(file: Path, purpose: str, report: FileReport, problems: _Collector) -> None:
    if purpose != "eval":
        problems.add(None, f"CSV files are not supported for {purpose}. Only JSONL and Parquet files are "
                           "supported.", "extension")
        return
    import csv

    try:
        with open(file, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                problems.add(None, "CSV file is empty or has no header.", "csv")
                return
            samples = 0
            for row in reader:
                samples += 1
                if len(row) != len(header):
                    problems.add(samples, f"CSV file is malformed or the number of columns found on line {samples} "
                                          "is inconsistent with the header", "csv")
    except UnicodeDecodeError as exc:
        problems.add(None, f"File is not UTF-8 encoded. Error raised: {exc}.", "utf8")
        return
    except csv.Error as exc:
        problems.add(None, f"Error parsing the CSV file: {exc}", "csv")
        return
    report.num_samples = samples
    if samples < MIN_SAMPLES:
        problems.add(None, f"Processing {file} resulted in only {samples} samples. Our minimum is {MIN_SAMPLES} "
                           "samples.", "min-samples")

