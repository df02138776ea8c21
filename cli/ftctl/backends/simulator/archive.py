"""A completed simulated job's checkpoint as the archive ``GET /v1/finetune/download`` sends: a
``.tar.zst`` with the files at its root (a manifest, the model's or the adapter's config, and
placeholder safetensors weights), built on the fly and the same bytes every time.

Any byte range is computed, never read from a whole archive in memory: the tar is uncompressed
with fixed headers and content generators, so every member's offset is known up front, and the
zstd frame wraps it in *raw* (stored) blocks of 128 KiB, each behind a 3-byte block header
(RFC 8878 §3.1.1.2). The total size is exact before a byte is made; a real ``zstd -d`` or the
``zstandard`` package decompresses it. The weights are pseudo-random bytes, not a model.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import os
import re
import struct
import tarfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator

ENV_SIZE = "FTCTL_SIM_ARCHIVE_BYTES"  # the archive's approximate size (the benchmark asks for more)
DEFAULT_SIZE = 4 * 1024 * 1024
CONTENT_TYPE = "application/octet-stream"  # the vendor's client then names the file *.tar.zst
FORMAT = "ftctl-simulator-checkpoint/1"

BLOCK = 128 * 1024  # the largest raw block a 128 KiB window allows
# magic; frame header descriptor: 8-byte content size, not single-segment, no checksum, no dictionary;
# window descriptor 0x38: 2^(10+7) = 128 KiB.
_MAGIC = b"\x28\xb5\x2f\xfd"
_PATTERN = 256 * 1024  # the weights repeat a pseudo-random pattern this long (constant memory)


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    read: Callable[[int, int], bytes]  # (offset, length) -> bytes of the member's content


def archive_size() -> int:
    text = os.environ.get(ENV_SIZE, "").strip()
    if not text:
        return DEFAULT_SIZE
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 64 * 1024:
        from ftctl.errors import InvalidInput

        raise InvalidInput(f"{ENV_SIZE} must be a whole number of bytes >= 65536 (got {text!r})")
    return value


class Archive:
    """The archive of one job's checkpoint: ``size`` bytes, any range of them by ``read``."""

    def __init__(self, members: list[Member], *, mtime: int) -> None:
        self.members = members
        self._parts: list[tuple[int, int, Callable[[int, int], bytes]]] = []  # (tar offset, length, reader)
        offset = 0
        for m in members:
            header = _tar_header(m.name, m.size, mtime)
            self._parts.append((offset, len(header), _constant(header)))
            offset += len(header)
            self._parts.append((offset, m.size, m.read))
            offset += m.size
            pad = -m.size % 512
            if pad:
                self._parts.append((offset, pad, _zeros))
                offset += pad
        self._parts.append((offset, 1024, _zeros))  # the end-of-archive marker
        self.tar_size = offset + 1024
        self._starts = [p[0] for p in self._parts]
        self.blocks = -(-self.tar_size // BLOCK)
        self._head = _MAGIC + b"\xc0\x38" + struct.pack("<Q", self.tar_size)
        self.size = len(self._head) + self.tar_size + 3 * self.blocks

    def read(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the archive, in pieces of at most one block."""
        end = self.size if end is None else min(end, self.size)
        head = len(self._head)
        if start < head:
            yield self._head[start:min(end, head)]
            start = head
        while start < end:
            k, within = divmod(start - head, BLOCK + 3)
            block_len = min(BLOCK, self.tar_size - k * BLOCK)
            if within < 3:
                last = 1 if k == self.blocks - 1 else 0
                header = (last | block_len << 3).to_bytes(3, "little")
                piece = header[within:min(3, within + end - start)]
                yield piece
                start += len(piece)
                continue
            tar_from = k * BLOCK + within - 3
            n = min(block_len - (within - 3), end - start)
            yield self._tar(tar_from, n)
            start += n

    def pieces(self, start: int = 0, end: int | None = None, size: int = 1024 * 1024) -> Iterator[bytes]:
        """``read``, gathered into pieces of about ``size`` bytes (fewer, larger writes to a socket)."""
        buffer: list[bytes] = []
        held = 0
        for piece in self.read(start, end):
            buffer.append(piece)
            held += len(piece)
            if held >= size:
                yield b"".join(buffer)
                buffer, held = [], 0
        if buffer:
            yield b"".join(buffer)

    def _tar(self, offset: int, n: int) -> bytes:
        i = bisect.bisect_right(self._starts, offset) - 1
        part_start, length, reader = self._parts[i]
        if offset - part_start + n <= length:  # within one part: no copy
            return reader(offset - part_start, n)
        out = bytearray()
        while n > 0:
            part_start, length, reader = self._parts[i]
            within = offset - part_start
            take = min(length - within, n)
            out += reader(within, take)
            offset, n, i = offset + take, n - take, i + 1
        return bytes(out)


def _tar_header(name: str, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uid, info.gid = size, mtime, 0o644, 0, 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def _constant(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, n: data[offset:offset + n]


def _zeros(offset: int, n: int) -> bytes:
    return bytes(n)


def _json_member(name: str, value: Any) -> Member:
    data = (json.dumps(value, indent=2, sort_keys=False) + "\n").encode()
    return Member(name, len(data), _constant(data))


def _weights(name: str, size: int, seed: bytes) -> Member:
    """A valid safetensors file: one U8 tensor of pseudo-random bytes (the pattern, repeated)."""
    header = json.dumps({"__metadata__": {"format": "pt", "note": "ftctl simulator placeholder"},
                         "weight": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}},
                        separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    prefix = struct.pack("<Q", len(header)) + header
    pattern: list[bytes] = []

    def read(offset: int, n: int) -> bytes:
        if offset >= len(prefix) and pattern:
            at = (offset - len(prefix)) % _PATTERN
            if at + n <= _PATTERN:  # the common case: one slice of the pattern
                return pattern[0][at:at + n]
        out = bytearray()
        if offset < len(prefix):
            out += prefix[offset:offset + n]
            n -= len(out)
            offset = len(prefix)
        if n > 0 and not pattern:
            pattern.append(hashlib.shake_256(seed + name.encode()).digest(_PATTERN))
        data_offset = offset - len(prefix)
        while n > 0:
            at = data_offset % _PATTERN
            piece = pattern[0][at:at + n]
            out += piece
            n -= len(piece)
            data_offset += len(piece)
        return bytes(out)

    return Member(name, len(prefix) + size, read)


def file_name(model_output_name: str | None, job_id: str, *, step: int | None, adapter: bool) -> str:
    """What Content-Disposition suggests: the output model's name without the user's prefix,
    ``-checkpoint-STEP`` for an explicit step, ``-adapter`` for an adapter."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", (model_output_name or job_id).split("/")[-1]).strip(".-") or job_id
    return stem + (f"-checkpoint-{step}" if step is not None else "") + ("-adapter" if adapter else "") + ".tar.zst"


def build(job: dict[str, Any], *, step: int, kind: str, created_at: float, sent: dict[str, Any] | None = None,
          size: int | None = None) -> Archive:
    """The archive of ``job`` (a completed wire job) at ``step``; ``kind`` is merged, adapter or
    default (a full-training job's weights); ``sent`` is the create request (the early-stopping
    settings the job object does not echo)."""
    sent = sent or {}
    size = archive_size() if size is None else size
    training_type = job.get("training_type") or {}
    manifest = {
        "format": FORMAT,
        "note": "simulated checkpoint: the weights are placeholder bytes, not a model",
        "job_id": job["id"], "step": step, "checkpoint_type": kind,
        "base_model": job.get("model"), "model_output_name": job.get("model_output_name"),
        "final": step == _promoted(job),
        "training": {k: job.get(k) for k in (
            "n_epochs", "n_evals", "n_checkpoints", "batch_size", "learning_rate", "lr_scheduler", "warmup_ratio",
            "max_grad_norm", "weight_decay", "training_method", "training_type", "random_seed", "total_steps",
            "steps_completed")},
        "early_stopping": {
            **{k: sent.get(k) for k in ("early_stopping_enabled", "early_stopping_patience",
                                        "early_stopping_min_delta", "early_stopping_warmup_evals")},
            **{k: job.get(k) for k in ("early_stopped", "early_stopping_best_step", "early_stopping_best_metric")}},
    }
    seed = f"{job['id']}:{step}:{kind}".encode()
    members = [_json_member("manifest.json", manifest)]
    if kind == "adapter":
        members.append(_json_member("adapter_config.json", {
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": job.get("model"),
            "r": training_type.get("lora_r"), "lora_alpha": training_type.get("lora_alpha"),
            "lora_dropout": training_type.get("lora_dropout"),
            "target_modules": training_type.get("lora_trainable_modules")}))
        members.append(_weights("adapter_model.safetensors", max(1, size // 4 - 4096), seed))
    else:
        members += [
            _json_member("config.json", {"_name_or_path": job.get("model"), "architectures": ["SimulatedForCausalLM"],
                                         "model_type": "ftctl-simulated", "torch_dtype": "uint8"}),
            _json_member("generation_config.json", {"do_sample": True, "temperature": 0.7}),
            _json_member("tokenizer_config.json", {"model_max_length": 131072, "tokenizer_class": "Simulated"}),
            _weights("model.safetensors", max(1, size - 8192), seed),
        ]
    return Archive(members, mtime=int(created_at))


def _promoted(job: dict[str, Any]) -> int | None:
    if job.get("early_stopped") and isinstance(job.get("early_stopping_best_step"), int):
        return job["early_stopping_best_step"]
    return job.get("steps_completed")


def read_all(archive: Archive) -> bytes:
    """The whole archive (tests and small tools only)."""
    buffer = io.BytesIO()
    for piece in archive.read():
        buffer.write(piece)
    return buffer.getvalue()
