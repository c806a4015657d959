"""Human-friendly durations: ``500ms``, ``30s``, ``5m``, ``1h`` in files, float seconds in code.

Operators write timeouts the way they think about them (``heartbeat_interval: 50ms``), while
protocol code wants one unit it can hand to ``call_later`` without conversions. So a duration is
parsed once, at the edge, into float seconds, and written back in the human form when a config is
dumped. :func:`format_duration` picks the representation that parses back to the *same* float, so
``dump -> load -> dump`` is stable.

Accepted forms:

* a number (int or float) — seconds, e.g. ``30`` or ``0.5``;
* a number with a unit — ``ms``, ``s``, ``m`` (minutes) or ``h``, e.g. ``500ms``, ``1.5s``;
* several such parts, Go-style — ``1m30s`` (the parts are added).

Units are case-insensitive and may be separated from the number by spaces. Negative values,
NaN and infinity are rejected; whether zero is acceptable is up to the field (see :data:`Duration`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

#: seconds per unit, largest first: :func:`format_duration` tries them in this order
UNITS: dict[str, float] = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
# "ms" must be tried before "m" and "s"; the lookahead stops "5 msec" from reading as 5 m + "sec".
_PART = rf"({_NUMBER})\s*(ms|h|m|s)(?![a-z])"
_PART_RE = re.compile(_PART, re.IGNORECASE)
_DURATION_RE = re.compile(rf"\s*(?:{_PART}\s*)+", re.IGNORECASE)
_PLAIN_NUMBER_RE = re.compile(rf"\s*{_NUMBER}\s*", re.IGNORECASE)

_FORMS = "use a number with a unit (ms, s, m, h) like 500ms, 30s, 5m, 1h, or a number of seconds"


def parse_duration(value: object) -> float:
    """Return ``value`` as float seconds; raise :class:`ValueError` saying what is accepted.

    Booleans are refused even though ``bool`` is an ``int``: ``timeout: yes`` is a typo, not
    one second.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {_FORMS}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise ValueError(f"not a duration: {_FORMS}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


def _parse_text(text: str) -> float:
    if text.strip().startswith("-"):
        raise ValueError("a duration must not be negative")
    if _PLAIN_NUMBER_RE.fullmatch(text):
        return float(text)
    if not _DURATION_RE.fullmatch(text):
        raise ValueError(f"not a duration: {_FORMS}")
    return sum(float(number) * UNITS[unit.lower()] for number, unit in _PART_RE.findall(text))


def format_duration(seconds: float) -> str:
    """Write ``seconds`` in the largest unit that holds it as a whole number (``90s``, ``500ms``).

    Every candidate is checked by parsing it back, so the result always round-trips exactly;
    a value no unit holds whole (``0.0001234``) falls back to its shortest exact float form in
    seconds (``0.0001234s``).
    """
    seconds = float(seconds)
    if seconds == 0:
        return "0s"
    for unit, factor in UNITS.items():
        count = seconds / factor
        if count.is_integer():
            candidate = f"{int(count)}{unit}"
            if _parse_text(candidate) == seconds:
                return candidate
    return f"{seconds!r}s"


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError("must be a positive duration, not zero")
    return seconds


#: A strictly positive duration field: float seconds in Python, the human form in JSON/YAML dumps.
#: Every duration in the schema is an interval or timeout, for which zero means nothing useful.
Duration = Annotated[
    float,
    BeforeValidator(_positive_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
