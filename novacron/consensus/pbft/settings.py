"""PBFT tuning knobs, with defaults per DWCP network mode.

The view-change timeout is the one number that matters most: too short and
a slow but correct primary is voted out (a view change costs a round of
signed messages and stalls ordering), too long and a faulty primary stalls
the service for that long. It plays the role of Raft's election timeout,
so :meth:`PBFTSettings.from_config` takes it from
``ConsensusConfig.election_timeout`` and the status (retransmission) period
from ``heartbeat_interval``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from novacron.config import ConsensusConfig

AuthMode = Literal["ed25519", "mac"]


@dataclass(frozen=True)
class PBFTSettings:
    """Everything a replica needs to know besides its members and keys.

    ``checkpoint_interval`` is the paper's K; ``watermark_window`` its L (the
    primary may run at most L sequence numbers ahead of the last stable
    checkpoint, so a faulty primary cannot exhaust the sequence space and
    logs stay bounded). L must be a multiple of K and at least 2K, so that
    the primary can keep working while the next checkpoint stabilises.
    """

    view_change_timeout: float = 1.0  #: base timeout; doubles for each consecutive view change
    max_view_change_timeout: float = 60.0
    status_interval: float = 0.25  #: period of STATUS (retransmission, catch-up) broadcasts
    checkpoint_interval: int = 16
    watermark_window: int = 64
    batch_max_requests: int = 64
    batch_max_bytes: int = 256 * 1024
    max_inflight_batches: int = 4  #: the primary batches new requests while this many are in flight
    auth: AuthMode = "ed25519"

    def __post_init__(self) -> None:
        if self.auth not in ("ed25519", "mac"):
            raise ValueError(f'auth must be "ed25519" or "mac", got {self.auth!r}')
        if self.view_change_timeout <= 0 or self.status_interval <= 0:
            raise ValueError("view_change_timeout and status_interval must be > 0")
        if self.checkpoint_interval < 1:
            raise ValueError(f"checkpoint_interval must be >= 1, got {self.checkpoint_interval}")
        k, window = self.checkpoint_interval, self.watermark_window
        if window < 2 * k or window % k:
            raise ValueError(
                f"watermark_window ({window}) must be a multiple of checkpoint_interval ({k}) "
                f"and at least twice it (>= {2 * k}), or the primary stalls at every checkpoint"
            )
        if self.batch_max_requests < 1 or self.batch_max_bytes < 1 or self.max_inflight_batches < 1:
            raise ValueError("batch_max_requests, batch_max_bytes and max_inflight_batches must be >= 1")

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> PBFTSettings:
        """Defaults for ``"datacenter"``, ``"hybrid"`` or ``"internet"`` (the config examples' timings)."""
        presets: dict[str, dict[str, Any]] = {
            "datacenter": {
                "view_change_timeout": 0.5,
                "status_interval": 0.05,
                "max_view_change_timeout": 10.0,
            },
            "hybrid": {"view_change_timeout": 1.5, "status_interval": 0.15, "max_view_change_timeout": 30.0},
            "internet": {
                "view_change_timeout": 10.0,
                "status_interval": 1.0,
                "max_view_change_timeout": 120.0,
            },
        }
        try:
            preset = presets[str(mode)]
        except KeyError:
            raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(presets)}") from None
        return replace(cls(**preset), **overrides)

    @classmethod
    def from_config(cls, config: ConsensusConfig, **overrides: Any) -> PBFTSettings:
        """Timeouts from a ``ConsensusConfig`` (election_timeout is the base view-change timeout)."""
        base = cls(
            view_change_timeout=float(config.election_timeout),
            status_interval=float(config.heartbeat_interval),
            max_view_change_timeout=max(60.0, 8 * float(config.election_timeout)),
        )
        return replace(base, **overrides)
