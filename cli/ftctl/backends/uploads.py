"""What both backends agree on for an upload, as ``together==3.1.1`` sends it: the purposes, the
file type from the extension, and the SHA-256 checksum the server dedups on."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ftctl.errors import InvalidInput

PURPOSES = ("fine-tune", "eval", "calibration", "batch-api")
FILE_TYPES = {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}
CHUNK = 1 << 20


def checksum_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_type_of(name: str) -> str:
    kind = FILE_TYPES.get(os.path.splitext(name)[1].lower())
    if kind is None:
        raise InvalidInput(f"{name}: only .jsonl, .parquet and .csv files can be uploaded")
    return kind


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
    return purpose
