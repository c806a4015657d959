"""The three DWCP network modes and the rule that picks one from a measurement.

The rule is the one of the original NovaCron design (issue 3, section 1):

* **datacenter** when latency < 10 ms **and** bandwidth > 1 Gbit/s;
* **internet** when latency > 50 ms **or** bandwidth < 1 Gbit/s;
* **hybrid** otherwise (10-50 ms with >= 1 Gbit/s, or exactly 1 Gbit/s).

The two conditions cannot both hold, so the order of the tests does not matter.
Boundaries are strict as written: exactly 10 ms is not datacenter, exactly
50 ms is not internet, exactly 1 Gbit/s is neither, so all three are hybrid.

**Latency means round-trip time (RTT)**, measured on the prober's own clock.
The original design's thresholds are RTT figures (its Go detector documents
"measures RTT to peer nodes"; a datacenter fabric is well under 1 ms RTT, a
metro link a few ms), and one-way delay cannot be measured without
synchronised clocks, which the runtime contract does not promise (the
simulator injects clock skew on purpose). See :mod:`novacron.mode.measurement`
for which statistic of a window's RTT samples is used.

:func:`classify` is three-valued: a window decides only what its
measurements determine. An RTT above 50 ms means internet whatever the
bandwidth; a bandwidth below 1 Gbit/s means internet whatever the RTT; any
other conclusion needs both numbers, and without them the window is
*inconclusive* (``None``) and leaves the mode alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    """A peer's (or a node's) network mode; the value is the config spelling."""

    DATACENTER = "datacenter"
    HYBRID = "hybrid"
    INTERNET = "internet"

    @property
    def caution(self) -> int:
        """How conservative the mode is: internet (2) > hybrid (1) > datacenter (0)."""
        return _CAUTION[self]


_CAUTION = {Mode.DATACENTER: 0, Mode.HYBRID: 1, Mode.INTERNET: 2}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The classification thresholds (RTT in seconds, bandwidth in bit/s).

    Defaults are the original design's. ``datacenter_min_bps`` and
    ``internet_max_bps`` are one number (1 Gbit/s) in that design; they are
    separate here so that a research run can open a hybrid band in bandwidth
    too.
    """

    datacenter_max_rtt: float = 0.010
    internet_min_rtt: float = 0.050
    datacenter_min_bps: float = 1e9
    internet_max_bps: float = 1e9

    def __post_init__(self) -> None:
        if not 0 < self.datacenter_max_rtt <= self.internet_min_rtt:
            raise ValueError("thresholds need 0 < datacenter_max_rtt <= internet_min_rtt")
        if not 0 < self.internet_max_bps <= self.datacenter_min_bps:
            raise ValueError("thresholds need 0 < internet_max_bps <= datacenter_min_bps")


DEFAULT_THRESHOLDS = Thresholds()


def classify(
    rtt: float | None, bandwidth_bps: float | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Mode | None:
    """The mode one window's RTT (s) and bandwidth (bit/s) indicate, or ``None`` if undetermined."""
    if (rtt is not None and rtt > thresholds.internet_min_rtt) or (
        bandwidth_bps is not None and bandwidth_bps < thresholds.internet_max_bps
    ):
        return Mode.INTERNET
    if rtt is None or bandwidth_bps is None:
        return None
    if rtt < thresholds.datacenter_max_rtt and bandwidth_bps > thresholds.datacenter_min_bps:
        return Mode.DATACENTER
    return Mode.HYBRID


def most_conservative(modes: Iterable[Mode | None]) -> Mode | None:
    """The most cautious of ``modes`` (``None`` entries ignored; ``None`` if there are none).

    This is the node-level mode: a setting that applies to the whole node
    (the consensus protocol, say) must suit its worst link, so one internet
    peer makes the node internet.
    """
    known = [m for m in modes if m is not None]
    return max(known, key=lambda m: m.caution) if known else None


def parse_mode(value: str | Mode | None) -> Mode | None:
    """A mode from its config spelling; ``""``, ``"auto"`` and ``None`` mean "detect"."""
    if value is None or isinstance(value, Mode):
        return value
    text = value.strip().lower()
    if text in ("", "auto"):
        return None
    try:
        return Mode(text)
    except ValueError:
        allowed = ", ".join(m.value for m in Mode)
        raise ValueError(f"unknown DWCP mode {value!r}; expected one of {allowed} (or auto)") from None
