"""How a loss is written, in one place. Three precisions, each for a reason:

- ``exact``: as reported (the shortest repr), where the rule's arithmetic is explained and a
  reader must see the very value the server compared (explanation, live view);
- ``short``: at most about 8 characters, for the chart's legend line;
- ``table``: 6 significant digits, for tables and the job summary.

NaN and the infinities are always spelled as the JSON contract spells them; a value of the wrong
type (a server's string) is shown as it came, never an error.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal
from typing import Any

from ftctl.wire import wire_float

_EXACT = Context(prec=1000)  # as ftctl.early_stopping: exact for any two floats


def fmt_loss(value: Any, precision: str = "exact") -> str:
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(wire_float(value))
    if precision == "table":
        return f"{value:.6g}"
    text = repr(value)
    if precision == "short" and len(text) > 8:
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.4f}"
    return text


def exact_text(d: Decimal) -> str:
    """An exact decimal as written, in exponent form when positional digits would run long
    (1e308 − 0 has 309 of them), and rounded to 17 significant digits (marked ~) past that."""
    text = str(d)
    if len(text) <= 24:
        return text.replace("E", "e")
    d = d.normalize(_EXACT)
    if len(d.as_tuple().digits) <= 17:
        return f"{d:e}".replace("E", "e")
    return "~" + f"{d:.16e}".replace("E", "e")
