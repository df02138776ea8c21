"""The items of a ``{"key": [...]}`` answer, decoded while its body is still arriving.

100,000 metrics rows are 10 MB of JSON; decoded at the end, they cost their whole decoding time
after the last byte. Decoded a piece at a time as the bytes arrive, most of that time is spent
while the server is still sending (it streams them). The result is exactly what decoding the
whole body gives, or nothing (then the body is decoded whole, as before), because a piece is
only ever cut at a ``},{`` and taken only when ``[`` + piece + ``]`` is valid JSON by itself: the
parser then passed through the same states as on the whole document, so the cut was between two
items of the list. Anything unusual (another layout, a lone surrogate escape, a piece that does
not decode, more than the one key) gives up and leaves the body to the ordinary decoding.
"""

from __future__ import annotations

import json
import re
from typing import Any

PIECE = 256 * 1024  # bytes decoded at a time, at least (40 pieces for 100,000 metrics rows)
CUT = b"},{"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # as TogetherBackend._decode: then decode it whole
_JSON_SPACE = b" \t\n\r"


class ArrivingList:
    def __init__(self, key: str, *, piece: int = PIECE) -> None:
        self.key, self.piece = key, piece
        self.head = b"{" + json.dumps(key).encode() + b":["
        self.restart()

    def restart(self) -> None:
        """A new attempt: nothing decoded yet."""
        self.items: list[Any] = []
        self.start = 0  # where the undecoded items begin in the body; 0: head not seen, -1: given up
        self.cut = -1  # the last ``},{`` seen after start
        self.scanned = 0  # bytes of the body searched for cuts

    def feed(self, body: bytes | bytearray) -> None:
        """The body so far (it only grows): decode what it holds past the last piece, if enough."""
        if self.start < 0:
            return
        if self.start == 0:
            if len(body) < len(self.head):
                return
            if not body.startswith(self.head):
                self.start = -1
                return
            self.start = self.scanned = len(self.head)
        found = body.rfind(CUT, max(self.start, self.scanned - len(CUT) + 1))
        self.scanned = len(body)
        if found >= 0:
            self.cut = found
        if self.cut >= 0 and self.cut + 1 - self.start >= self.piece:
            if self._take(body, self.start, self.cut + 1):
                self.start, self.cut = self.cut + 2, -1

    def result(self, body: bytes) -> dict[str, Any] | None:
        """``{key: items}`` when the whole body (its final form) was read this way: exactly what
        ``json.loads`` of it gives; None: decode the body whole."""
        if self.start <= 0:
            return None
        end = len(body.rstrip(_JSON_SPACE))
        if not body.endswith(b"]}", 0, end):
            return None
        if not self._take(body, self.start, end - 1, last=True):  # the last items and the list's "]"
            return None
        return {self.key: self.items}

    def _take(self, body: bytes | bytearray, start: int, stop: int, *, last: bool = False) -> bool:
        """Decode ``body[start:stop]``: a run of items, ending with the list's "]" when ``last``.
        False: it is not one (then nothing more is decoded here)."""
        text = body[start:stop].decode("utf-8", "replace")  # as httpx reads a body without a charset
        try:
            if _SURROGATE_ESCAPE.search(text):
                raise ValueError("a surrogate escape")
            self.items += json.loads("[" + text if last else "[" + text + "]")
        except (ValueError, RecursionError):
            self.start = -1
            return False
        return True
