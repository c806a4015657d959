"""Sizes and bandwidths the way people write them in scenario files: ``256MiB``, ``10Gbit``.

Scenario files describe payloads and links; ``268435456`` and ``1e10`` are correct but unreadable,
so both forms are accepted and parsed once, at the edge, into plain numbers (bytes, bit/s).
Dumps write the human form back (chosen so that it parses to the same number), which keeps the
``scenario.yaml`` saved next to the results readable. Durations reuse
:func:`novacron.config.parse_duration` (``500ms``, ``30s``, ``1m30s``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from novacron.config import format_duration, parse_duration

#: bytes per unit; binary units are what VM images and memory are measured in
SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}

#: bits per second per unit (``Gbit``, ``Gbps`` and ``Gbit/s`` all mean 1e9 bit/s)
BANDWIDTH_UNITS: dict[str, float] = {"bit": 1.0, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12}

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?"
_SIZE_RE = re.compile(rf"\s*{_NUMBER}\s*([A-Za-z]+)?\s*")
_BANDWIDTH_RE = re.compile(rf"\s*{_NUMBER}\s*([A-Za-z]+(?:/s)?)?\s*")


def _number(mantissa: str, exponent: str | None) -> float:
    return float(mantissa + (f"e{exponent}" if exponent else ""))


def parse_size(value: object) -> int:
    """``value`` in bytes: an integer, or a number with a unit (``64MiB``, ``1.5GB``)."""
    if isinstance(value, bool):
        raise ValueError("not a size: use bytes or a number with a unit like 64MiB or 1GB")
    if isinstance(value, int):
        nbytes = float(value)
    elif isinstance(value, float):
        nbytes = value
    elif isinstance(value, str):
        match = _SIZE_RE.fullmatch(value)
        unit = match.group(3) if match else None
        if not match or (unit is not None and unit not in SIZE_UNITS):
            units = ", ".join(SIZE_UNITS)
            raise ValueError(f"not a size: use bytes or a number with a unit ({units}), e.g. 64MiB")
        nbytes = _number(match.group(1), match.group(2)) * SIZE_UNITS[unit or "B"]
    else:
        raise ValueError("not a size: use bytes or a number with a unit like 64MiB or 1GB")
    if not math.isfinite(nbytes) or nbytes < 0:
        raise ValueError("a size must be a finite number of bytes >= 0")
    if not float(nbytes).is_integer():
        raise ValueError(f"a size must be a whole number of bytes (got {nbytes:g})")
    return int(nbytes)


def format_size(nbytes: int) -> str:
    """The largest binary unit that holds ``nbytes`` whole: ``268435456`` -> ``256MiB``."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if nbytes and nbytes % SIZE_UNITS[unit] == 0:
            return f"{nbytes // SIZE_UNITS[unit]}{unit}"
    return f"{nbytes}B"


def parse_bandwidth(value: object) -> float:
    """``value`` in bit/s: a number, or a number with a unit (``10Gbit``, ``100Mbps``, ``1Gbit/s``)."""
    if isinstance(value, bool):
        raise ValueError("not a bandwidth: use bit/s or a number with a unit like 10Gbit")
    if isinstance(value, int | float):
        bps = float(value)
    elif isinstance(value, str):
        match = _BANDWIDTH_RE.fullmatch(value)
        unit = _bandwidth_unit(match.group(3) or "bit") if match else None
        if unit is None:
            raise ValueError(
                "not a bandwidth: use bit/s or a number with a unit (Mbit, Gbit, Gbps), e.g. 10Gbit"
            )
        bps = _number(match.group(1), match.group(2)) * BANDWIDTH_UNITS[unit]
    else:
        raise ValueError("not a bandwidth: use bit/s or a number with a unit like 10Gbit")
    if not math.isfinite(bps) or bps <= 0:
        raise ValueError("a bandwidth must be a positive, finite number of bit/s")
    return bps


def _bandwidth_unit(text: str) -> str | None:
    """``Gbps``, ``Gbit/s`` and ``Gbit`` -> ``gbit``; bytes (``GB``) are refused, not guessed."""
    unit = text.lower()
    if unit.endswith("bps"):
        unit = unit[: -len("bps")] + "bit"
    unit = unit.removesuffix("/s")
    return unit if unit in BANDWIDTH_UNITS else None


def format_bandwidth(bps: float) -> str:
    """``1e10`` -> ``10Gbit`` (the largest unit holding it whole), else plain bit/s."""
    for unit, factor in (("Tbit", 1e12), ("Gbit", 1e9), ("Mbit", 1e6), ("kbit", 1e3)):
        count = bps / factor
        if count.is_integer() and parse_bandwidth(f"{int(count)}{unit}") == bps:
            return f"{int(count)}{unit}"
    return f"{bps!r}bit"


def _time(value: object) -> float:
    """A point in simulated time or a non-negative length: ``0`` is allowed (unlike config Durations)."""
    return parse_duration(value)


def _positive_time(value: object) -> float:
    seconds = parse_duration(value)
    if seconds == 0:
        raise ValueError("must be a positive duration, not zero")
    return seconds


#: bytes, written ``64MiB`` in files
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, when_used="json")]
#: bit/s, written ``10Gbit`` in files
Bandwidth = Annotated[
    float, BeforeValidator(parse_bandwidth), PlainSerializer(format_bandwidth, when_used="json")
]
#: seconds >= 0 (``at: 0s`` is fine), written ``500ms`` in files
Time = Annotated[float, BeforeValidator(_time), PlainSerializer(format_duration, when_used="json")]
#: seconds > 0
Duration = Annotated[
    float, BeforeValidator(_positive_time), PlainSerializer(format_duration, when_used="json")
]
