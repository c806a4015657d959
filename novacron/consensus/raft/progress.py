"""What a leader knows about each follower's log (etcd-raft's ``tracker.Progress``).

A follower is in one of three states:

* ``probe``: the leader does not know where the logs diverge; it sends one
  AppendEntries at a time and waits for the answer (or the next heartbeat).
* ``replicate``: the logs match up to ``match``; the leader streams entries
  optimistically (``next`` moves on at send time) with at most
  ``max_inflight`` messages unacknowledged: pipelining.
* ``snapshot``: the entries it needs were compacted; a snapshot is on its way.
"""

from __future__ import annotations

from collections import deque

PROBE = "probe"
REPLICATE = "replicate"
SNAPSHOT = "snapshot"


class Progress:
    __slots__ = (
        "match",
        "next",
        "state",
        "probe_sent",
        "inflight",
        "recent_active",
        "progressed",
        "acked_ctx",
        "pending_snapshot",
        "snap_offset",
        "sent_commit",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = PROBE
        self.probe_sent = False
        self.inflight: deque[int] = deque()  # last index of each unacknowledged AppendEntries
        self.recent_active = False  # heard from since the last check-quorum round
        self.progressed = False  # made progress since the last heartbeat (stall detection)
        self.acked_ctx = 0  # highest ReadIndex round it confirmed
        self.pending_snapshot = 0
        self.snap_offset = 0
        self.sent_commit = 0

    def paused(self, max_inflight: int) -> bool:
        if self.state == PROBE:
            return self.probe_sent
        if self.state == REPLICATE:
            return len(self.inflight) >= max_inflight
        return True

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to ``index``; False if it is old news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.progressed = True
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the AppendEntries whose ``prev_index`` was ``rejected``.

        Returns False for a stale rejection (of a message sent before a newer
        one already moved ``next``), which must not move ``next`` backwards.
        """
        if self.state == REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def free_to(self, index: int) -> None:
        inflight = self.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()

    def become_probe(self) -> None:
        if self.state == SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self.state = PROBE
        self.probe_sent = False
        self.inflight.clear()

    def become_replicate(self) -> None:
        self.state = REPLICATE
        self.next = self.match + 1
        self.inflight.clear()

    def become_snapshot(self, index: int) -> None:
        self.state = SNAPSHOT
        self.pending_snapshot = index
        self.snap_offset = 0
        self.inflight.clear()

    def __repr__(self) -> str:
        return f"<Progress {self.state} match={self.match} next={self.next} inflight={len(self.inflight)}>"
