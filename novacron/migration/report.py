"""What a migration did: totals, downtime, and one row per round (as pandas tables)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd


@dataclass(frozen=True)
class RoundReport:
    """One pre-copy round (or the stop-and-copy, or post-copy's push)."""

    index: int
    phase: str  # "precopy", "stop-and-copy", "postcopy"
    started: float
    duration: float
    pages: int
    bytes_in: int  # page bytes
    bytes_out: int  # wire bytes
    dirtied_pages: int  # pages dirtied while this round ran (the next round's work)
    dirty_rate_bps: float  # dirtied page bytes per second during the round
    throttle: float  # guest throttle during the round
    zero: int = 0
    delta: int = 0
    full: int = 0
    streams: int = 1  # the count that sent most of the round's page bytes


@dataclass
class MigrationReport:
    migration: str
    engine: str
    peer: str
    outcome: str  # "completed", or "failed: <reason>"
    converged: bool
    total_time: float
    downtime: float
    bytes_sent: int  # wire bytes, all rounds
    pages_sent: int
    memory_bytes: int
    rounds: list[RoundReport] = field(default_factory=list)
    final_throttle: float = 0.0
    streams: int = 1  # the count that sent most page bytes
    postcopy: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "completed"

    @property
    def precopy_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.phase == "precopy")

    def summary(self) -> dict[str, object]:
        """One flat row (for a sweep's table)."""
        return {
            "engine": self.engine,
            "outcome": self.outcome,
            "converged": self.converged,
            "total_time_s": self.total_time,
            "downtime_s": self.downtime,
            "bytes_sent": self.bytes_sent,
            "sent_over_memory": self.bytes_sent / self.memory_bytes if self.memory_bytes else 0.0,
            "rounds": self.precopy_rounds,
            "final_throttle": self.final_throttle,
            "streams": self.streams,
            **{f"postcopy_{k}": v for k, v in self.postcopy.items()},
        }

    def rounds_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rounds])
