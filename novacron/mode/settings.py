"""Detection settings, and how they come from the node configuration.

The three fields of ``dwcp`` in the configuration map onto
:class:`DetectionSettings`: ``detection_interval`` -> ``interval``,
``forced_mode`` -> ``forced_mode`` (``NOVACRON_DWCP_MODE`` sets that field
through :mod:`novacron.config`, so the environment needs no separate path
here), ``enable_auto_detection`` -> ``auto_detect``. Bandwidth probes use
``dwcp.transport.min_streams`` parallel streams, so the probe sees what the
smallest AMST transfer would. The rest are probing details with defaults
that suit both a datacenter and the internet.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from novacron.config import DWCPConfig

from .hysteresis import DEFAULT_HYSTERESIS
from .modes import DEFAULT_THRESHOLDS, Mode, Thresholds, parse_mode

#: With auto-detection off and no forced mode, the node runs in this mode
#: (the original design's starting mode: neither extreme).
STATIC_DEFAULT_MODE = Mode.HYBRID


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """How a :class:`~novacron.mode.ModeDetector` measures and decides.

    * ``interval``: seconds between the starts of two detection rounds; each
      round closes one measurement window per peer.
    * ``hysteresis``: K, the consecutive windows a change needs.
    * ``forced_mode`` / ``auto_detect``: see :attr:`static_mode`.
    * ``probes`` RTT probes per peer per round, ``probe_spacing`` seconds
      apart; one still unanswered ``probe_timeout`` after the round's last
      probe is lost (default: a quarter of the interval, at most 2 s).
    * Bandwidth, to peers that answered an RTT probe: a
      ``bandwidth_small_bytes`` then a ``bandwidth_probe_bytes`` transfer over
      ``probe_streams`` streams, each bounded by ``transfer_timeout`` (default:
      a quarter of the interval, at most 10 s); a probe that times out counts
      as its size over the timeout, an upper bound. ``bandwidth_probe_bytes=0``
      turns active probing off (passive samples only). Why 4 MiB: on a loaded
      loopback the real backend moves ~8 Gbit/s and its per-transfer overhead
      varies by about a millisecond; 1 MiB probes sometimes read under
      2 Gbit/s, 4 MiB probes never read under 4.8, well clear of the 1 Gbit/s
      threshold. The simulator is exact at any size.
    * ``passive_min_bytes``: smaller real transfers are no bandwidth evidence
      (their goodput measures their fixed costs).

    The default timeouts keep a round with one peer within an interval, which
    the detection bound needs.
    """

    interval: float = 30.0
    hysteresis: int = DEFAULT_HYSTERESIS
    forced_mode: Mode | None = None
    auto_detect: bool = True
    thresholds: Thresholds = field(default=DEFAULT_THRESHOLDS)
    probes: int = 5
    probe_spacing: float = 0.01
    probe_timeout: float | None = None
    bandwidth_probe_bytes: int = 4 << 20
    bandwidth_small_bytes: int = 64 << 10
    probe_streams: int = 4
    transfer_timeout: float | None = None
    passive_min_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError(f"detection interval must be > 0, got {self.interval}")
        if self.probe_timeout is None:
            object.__setattr__(self, "probe_timeout", min(2.0, self.interval / 4))
        if self.transfer_timeout is None:
            object.__setattr__(self, "transfer_timeout", min(10.0, self.interval / 4))
        if self.hysteresis < 1:
            raise ValueError(f"hysteresis must be >= 1 window, got {self.hysteresis}")
        if self.probes < 1 or self.probe_spacing < 0 or self.probe_timeout <= 0:
            raise ValueError("need probes >= 1, probe_spacing >= 0 and probe_timeout > 0")
        if self.bandwidth_probe_bytes < 0 or self.bandwidth_small_bytes < 0:
            raise ValueError("probe sizes must be >= 0")
        if self.bandwidth_probe_bytes and self.bandwidth_small_bytes >= self.bandwidth_probe_bytes:
            raise ValueError("bandwidth_small_bytes must be smaller than bandwidth_probe_bytes")
        if self.probe_streams < 1 or self.transfer_timeout <= 0:
            raise ValueError("need probe_streams >= 1 and transfer_timeout > 0")
        object.__setattr__(self, "forced_mode", parse_mode(self.forced_mode))

    @property
    def static_mode(self) -> Mode | None:
        """The fixed mode when nothing is detected (forced, or auto-detection off); else ``None``."""
        if self.forced_mode is not None:
            return self.forced_mode
        return None if self.auto_detect else STATIC_DEFAULT_MODE

    @classmethod
    def from_config(cls, dwcp: DWCPConfig, **overrides: Any) -> DetectionSettings:
        """Settings from the ``dwcp`` section; ``overrides`` set any other field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown detection settings {unknown}; known: {', '.join(sorted(known))}")
        base: dict[str, Any] = {
            "interval": dwcp.detection_interval,
            "forced_mode": parse_mode(dwcp.forced_mode),
            "auto_detect": dwcp.enable_auto_detection,
            "probe_streams": dwcp.transport.min_streams,
        }
        return cls(**{**base, **overrides})
