"""Raft's knobs, with defaults per network mode.

Timing follows the Raft paper (§5.6): ``broadcastTime << electionTimeout
<< MTBF``. A leader sends a heartbeat every ``heartbeat_interval``; a
follower that hears nothing for its election timeout, drawn uniformly from
``[election_timeout, 2 * election_timeout)`` (randomised so that split votes
are rare), starts an election. ``election_timeout_max`` replaces that range by
an explicit ``[election_timeout, election_timeout_max]`` (the paper's §9.3
experiment varies it, e.g. 150-155 ms).

The pure core counts *ticks*, as etcd-raft does; :attr:`RaftSettings.tick_interval`
converts seconds to ticks (a tenth of the election timeout at most, so the
randomised timeout has ten or more distinct values; with an explicit range, also
a tenth of its width at most). ``tick`` overrides it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

MiB = 1 << 20


class _TimingConfig(Protocol):
    """What :meth:`RaftSettings.from_config` reads (``novacron.config.ConsensusConfig`` has it)."""

    heartbeat_interval: float
    election_timeout: float


#: (heartbeat_interval, election_timeout) per network mode (see :meth:`RaftSettings.for_mode`).
MODE_TIMING: dict[str, tuple[float, float]] = {
    # sub-ms RTT: the Raft paper's 150-300 ms election timeouts, heartbeats every 50 ms
    "datacenter": (0.05, 0.15),
    # metro links within a region, WAN between: RTTs of tens of ms
    "hybrid": (0.25, 1.25),
    # inter-region RTTs up to ~300 ms with jitter and loss: seconds, not milliseconds
    "internet": (0.5, 2.5),
}


@dataclass(frozen=True)
class RaftSettings:
    """Configuration of one Raft node (all nodes of a cluster should agree on it)."""

    #: Leader heartbeat period (seconds).
    heartbeat_interval: float = 0.05
    #: Minimum election timeout (seconds); each wait is drawn from [T, 2T) ...
    election_timeout: float = 0.15
    #: ... or, when set, uniformly from [election_timeout, election_timeout_max] (seconds).
    election_timeout_max: float | None = None
    #: Tick length override (seconds); None: derived (see :attr:`tick_interval`).
    tick: float | None = None
    #: Pre-vote (thesis §9.6): a node first asks whether it *could* win before bumping its
    #: term, so a partitioned node that rejoins does not depose a healthy leader.
    pre_vote: bool = True
    #: A leader that has not heard from a quorum for an election timeout steps down, and
    #: followers that heard from a leader recently ignore vote requests (thesis §4.2.3,
    #: §6.2): a minority-side leader stops claiming leadership, removed servers cannot disrupt.
    check_quorum: bool = True
    #: Take a snapshot of the state machine every this many applied entries (0: never). A
    #: snapshot serialises the whole state, so its cost grows with the state, not the entries:
    #: etcd's default is 10,000 entries for the same reason (at 1,000, a 30k-key store spent a
    #: quarter of the leader's CPU on snapshots under load).
    snapshot_every: int = 10_000
    #: Entries kept in the log behind a snapshot, so a slightly lagging follower gets
    #: entries rather than a whole snapshot.
    compaction_keep: int = 100
    #: Bytes of snapshot data per InstallSnapshot message.
    snapshot_chunk_bytes: int = 1 * MiB
    #: Soft bound on the entry bytes of one AppendEntries (at least one entry is sent).
    max_append_bytes: int = 1 * MiB
    #: AppendEntries messages in flight per follower before the leader waits for acks.
    max_inflight: int = 64
    #: Proposals + reads awaiting their answer on the leader; beyond it clients get "busy".
    max_pending: int = 4096
    #: Largest operation a client may propose (a message is at most 16 MiB).
    max_entry_bytes: int = 8 * MiB
    #: TEST ONLY. Lets a leader commit entries of earlier terms by counting replicas: the
    #: bug of Figure 8 of the Raft paper, which can lose committed entries. It exists so
    #: that the simulation campaign can show it catches a real safety bug; it also skips the
    #: leader's no-op on election, which would otherwise hide the bug most of the time. Never enable.
    unsafe_commit_old_terms: bool = False
    #: TEST ONLY. Grants votes without the election restriction (§5.4.1: a voter refuses a
    #: candidate whose log is less up to date than its own), so a leader may lack committed
    #: entries and overwrite them. The second deliberately broken variant. Never enable.
    unsafe_vote_for_any_log: bool = False

    def __post_init__(self) -> None:
        if self.heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {self.heartbeat_interval}")
        if self.election_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                f"election_timeout ({self.election_timeout:g} s) must be at least 2 x "
                f"heartbeat_interval ({self.heartbeat_interval:g} s): followers need several "
                "heartbeats per election timeout"
            )
        if self.election_timeout_max is not None and self.election_timeout_max < self.election_timeout:
            raise ValueError(
                f"election_timeout_max ({self.election_timeout_max:g} s) must be >= "
                f"election_timeout ({self.election_timeout:g} s)"
            )
        if self.tick is not None and not 0 < self.tick <= self.heartbeat_interval:
            raise ValueError(f"tick must be in (0, heartbeat_interval], got {self.tick}")
        for name in ("snapshot_chunk_bytes", "max_append_bytes", "max_inflight", "max_pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.snapshot_every < 0 or self.compaction_keep < 0:
            raise ValueError("snapshot_every and compaction_keep must be >= 0")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> RaftSettings:
        """Defaults for a network mode: ``"datacenter"``, ``"hybrid"`` or ``"internet"``."""
        try:
            heartbeat, election = MODE_TIMING[mode]
        except KeyError:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODE_TIMING)}") from None
        return cls(heartbeat_interval=heartbeat, election_timeout=election, **overrides)

    @classmethod
    def from_config(cls, config: _TimingConfig, **overrides: Any) -> RaftSettings:
        """From ``novacron.config.ConsensusConfig`` (its heartbeat_interval, election_timeout)."""
        return cls(
            heartbeat_interval=float(config.heartbeat_interval),
            election_timeout=float(config.election_timeout),
            **overrides,
        )

    def replace(self, **changes: Any) -> RaftSettings:
        return dataclasses.replace(self, **changes)

    # -- ticks (what the pure core counts) ----------------------------------------------------
    @property
    def tick_interval(self) -> float:
        if self.tick is not None:
            return self.tick
        tick = min(self.heartbeat_interval, self.election_timeout / 10)
        width = (self.election_timeout_max or self.election_timeout) - self.election_timeout
        if width > 0:
            tick = min(tick, width / 10)  # ten or more distinct timeouts in the range
        return tick

    @property
    def heartbeat_ticks(self) -> int:
        return max(1, round(self.heartbeat_interval / self.tick_interval))

    @property
    def election_ticks(self) -> int:
        return max(self.heartbeat_ticks + 1, round(self.election_timeout / self.tick_interval))

    @property
    def election_ticks_max(self) -> int:
        """Longest election timeout in ticks (inclusive); None range: ``2 * election_ticks - 1``."""
        if self.election_timeout_max is None:
            return 2 * self.election_ticks - 1
        return max(self.election_ticks, round(self.election_timeout_max / self.tick_interval))
