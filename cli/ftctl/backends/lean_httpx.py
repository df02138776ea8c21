"""httpx without its command-line tool.

``httpx/__init__`` imports ``httpx._main`` for ``httpx.main`` (its CLI), which pulls in click,
pygments and Rich's console, progress, syntax and table modules: 40-50 ms of every HTTP command,
for a function ftctl never calls. A None in ``sys.modules`` makes that one import fail, which httpx
expects (``except ImportError``: its stub ``main``); the entry is removed again afterwards.
"""

from __future__ import annotations

import sys

if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        if sys.modules.get("httpx._main", 0) is None:
            del sys.modules["httpx._main"]
else:
    import httpx

__all__ = ["httpx"]
