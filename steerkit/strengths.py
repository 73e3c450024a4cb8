"""Strength as users write it: a number for every attribute, a list with one per attribute, or a dict by
attribute name (``{"sentiment": 4, "food": 2}``; attributes left out are 0). One reading for the Python
API, the CLI and the vLLM request, so all three accept and refuse the same things.

Imports no torch: the vLLM front end validates a request with it alone.
"""
from __future__ import annotations

import math


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def strength_values(value, attributes, where: str = "strength"):
    """``value`` as a float (one number for every attribute) or a list of one float per attribute, in
    the order of ``attributes``. Raises ValueError with one line naming ``where`` and what was expected."""
    attributes = list(attributes)
    k = len(attributes)
    want = (f"a number, a list of {k} floats (one per attribute: {', '.join(attributes)}) or "
            f"{{attribute: number}}")
    if _is_number(value):
        values = [float(value)]
    elif isinstance(value, dict):
        unknown = [n for n in value if n not in attributes]
        if unknown:
            raise ValueError(f"{where}: unknown attribute {unknown[0]!r}; these vectors have "
                             f"{', '.join(attributes)}")
        bad = [n for n, v in value.items() if not _is_number(v)]
        if bad:
            raise ValueError(f"{where}: the strength of {bad[0]!r} must be a number, got {value[bad[0]]!r}")
        values = [float(value.get(a, 0.0)) for a in attributes]
    elif isinstance(value, (list, tuple)) and len(value) == k and all(_is_number(v) for v in value):
        values = [float(v) for v in value]
    else:
        raise ValueError(f"{where}: expected {want}, got {value!r}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: contains NaN or Inf: {value!r}")
    return values[0] if _is_number(value) else values


def parse_cli(tokens: list[str], where: str = "--strength"):
    """``--strength 2``, ``--strength 4 2`` (one per attribute) or ``--strength sentiment=4 food=2`` as the
    Python value ``strength_values`` reads: a float, a list or a dict. None stays None."""
    if tokens is None:
        return None
    named = ["=" in t for t in tokens]
    if any(named) and not all(named):
        raise ValueError(f"{where}: give numbers only or NAME=number only, got {' '.join(tokens)}")
    if all(named):
        out = {}
        for t in tokens:
            name, _, number = t.partition("=")
            if not name or name in out:
                raise ValueError(f"{where}: expected NAME=number once per attribute, got {t!r}")
            out[name] = _cli_number(number, where, t)
        return out
    values = [_cli_number(t, where, t) for t in tokens]
    return values[0] if len(values) == 1 else values


def _cli_number(text: str, where: str, token: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{where}: {token!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: {token!r} is not a finite number")
    return v
