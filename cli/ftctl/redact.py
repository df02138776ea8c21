"""The one filter every message leaving ftctl goes through: error lines (plain and ``--json``),
notes, warnings, ``--debug`` traces and tracebacks, and anything a server or the transport said.

It removes:
- the secrets ftctl holds (``TOGETHER_API_KEY``, ``WANDB_API_KEY``, the Hugging Face tokens, and any
  value handed to ``remember``, e.g. a create body's ``wandb_key``), even when an echo split them
  with whitespace, a line break or the escapes ``\\n`` ``\\r`` ``\\t``; and, for a secret of 16+
  characters, what a cut leaves of it: a run of 8+ characters from its start or its end, and any
  run of 16+ characters from anywhere in it. Fewer characters of a 64-character key are not worth
  guessing from; a shorter run from its middle would also match ordinary words in a key made of
  words (test keys are), while its ends and 16-character runs do not;
- the value of any ``Authorization`` header, any ``Bearer``/``Basic`` credential;
- credentials in URLs (``https://user:pass@host`` becomes ``https://****@host``) and ``api_key=``,
  ``token=``-style query parameters.

Call it BEFORE cutting or reflowing text: a key cut at a length limit or joined across lines is
harder to recognise afterwards. Data on stdout (``--json``, tables) is what the API said and is not
filtered. Imports nothing of ftctl: every layer may use it.
"""

from __future__ import annotations

import os
import re

MASK = "****"
PARTIAL = 8  # the shortest run from a long secret's start or end that is removed on its own
LONG_SECRET = 16  # secrets this long are matched in parts too (and any run this long); shorter ones whole
SECRET_ENV = ("TOGETHER_API_KEY", "WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

_remembered: set[str] = set()

# What may sit between the characters of an echoed secret: whitespace, or an escaped line break/tab
# (repr() and JSON write a newline inside a string as the two characters backslash and n).
_GAP = re.compile(r"\s|\\[nrt]")
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]*@")
_AUTH_HEADER = re.compile(r"""(?i)(authorization["']?\s*[:=]\s*["']?)(?:(bearer|basic|token)\s+(?=\S))?(?!\*{4}|(?:bearer|basic|token)\s)[^\s"',;]+""")
_SCHEME = re.compile(r"(?i)\b(bearer|basic)(\s+)(?!\*{4})[A-Za-z0-9\-._~+/=:]{4,}")
_QUERY = re.compile(r"(?i)([?&](?:api[_-]?key|access[_-]?token|token|key|password)=)[^&\s#\"']+")


def remember(secret: str | None) -> None:
    """Treat ``secret`` as a secret for the rest of this run (it never leaves ftctl)."""
    if secret and secret.strip():
        _remembered.add(secret.strip())


def secrets() -> list[str]:
    found = {os.environ.get(name, "").strip() for name in SECRET_ENV} | _remembered
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` without any secret, credential or authorization value (see the module's doc)."""
    if not text:
        return text
    for secret in secrets():
        text = _without(text, secret)
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + MASK, text)
    text = _SCHEME.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    return _QUERY.sub(lambda m: m.group(1) + MASK, text)


def _without(text: str, secret: str) -> str:
    long = len(secret) >= LONG_SECRET
    head, tail = secret[:PARTIAL], secret[-PARTIAL:]
    pieces = {secret[i:i + LONG_SECRET] for i in range(len(secret) - LONG_SECRET + 1)} if long else {secret}
    squeezed = _GAP.sub("", text)  # the fast test, in C: most text holds no piece at all
    if not any(piece in squeezed for piece in pieces) and not (long and (head in squeezed or tail in squeezed)):
        return text
    hit = bytearray(len(squeezed))
    for piece in pieces:
        for at in _finds(squeezed, piece):
            hit[at:at + len(piece)] = b"\x01" * len(piece)
    if long:
        for at in _finds(squeezed, head):  # a cut echo: the key's start, as far as it goes
            n = PARTIAL
            while n < len(secret) and at + n < len(squeezed) and squeezed[at + n] == secret[n]:
                n += 1
            hit[at:at + n] = b"\x01" * n
        for at in _finds(squeezed, tail):  # or its end
            end, n = at + PARTIAL, PARTIAL
            while n < len(secret) and end - n - 1 >= 0 and squeezed[end - n - 1] == secret[-n - 1]:
                n += 1
            hit[end - n:end] = b"\x01" * n
    # Where each character of ``squeezed`` sits in ``text``, to cut the matches out of the original.
    where = [m.start() for m in re.finditer(r"\\[nrt]|\s|(.)", text, re.S) if m.group(1) is not None]
    out, last, i = [], 0, 0
    while i < len(hit):
        if not hit[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(hit) and hit[j + 1]:
            j += 1
        out += [text[last:where[i]], MASK]
        last = where[j] + 1
        i = j + 1
    out.append(text[last:])
    return "".join(out)


def _finds(text: str, piece: str) -> list[int]:
    found, at = [], text.find(piece)
    while at != -1:
        found.append(at)
        at = text.find(piece, at + 1)
    return found
