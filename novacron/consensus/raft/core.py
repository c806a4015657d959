"""The Raft consensus core: a pure state machine, no I/O (the etcd-raft design).

The host (:class:`~.node.RaftNode`) feeds it four kinds of input:

* :meth:`RaftCore.step` a message from a peer;
* :meth:`RaftCore.tick` the passage of time (one tick = ``settings.tick_interval``);
* :meth:`RaftCore.propose` / :meth:`RaftCore.propose_config` / :meth:`RaftCore.read_index`
  requests from clients;

and, whenever :meth:`RaftCore.has_ready` says so, collects a :class:`Ready`
batch: the hard state, entries and snapshot to make durable, the messages to
send *after* that, the committed entries to apply and the ReadIndex reads
released. :meth:`RaftCore.advance` then tells the core the batch was handled.

Because nothing here touches a clock, a socket or a disk, the tests can drive
any interleaving of messages and ticks by hand (tests/consensus/raft/test_core.py)
and the same code runs on the simulator and on asyncio.

Section numbers refer to the Raft paper (Ongaro & Ousterhout, 2014) and to
Ongaro's thesis (2014) for pre-vote, membership changes and ReadIndex.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from novacron.consensus.api import Command
from novacron.runtime import Message

from .log import RaftLog
from .messages import (
    CONFIG,
    NOOP,
    NORMAL,
    AppendEntries,
    AppendReply,
    Entry,
    HardState,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    RequestVote,
    Snapshot,
    SnapshotReply,
    VoteReply,
)
from .progress import PROBE, REPLICATE, SNAPSHOT, Progress
from .settings import RaftSettings

if TYPE_CHECKING:
    import random

FOLLOWER = "follower"
PRECANDIDATE = "precandidate"
CANDIDATE = "candidate"
LEADER = "leader"


class RaftError(Exception):
    """A request Raft cannot take now (the reason is in the message)."""


class NotLeader(RaftError):
    """Only the leader takes proposals and reads; ``leader`` is where to retry (None: unknown)."""

    def __init__(self, leader: str | None) -> None:
        self.leader = leader
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")


class ConfigChangeInProgress(RaftError):
    """Single-server changes go one at a time (thesis §4.1): wait for the previous one."""


@dataclass(frozen=True)
class ReadState:
    """A ReadIndex read released: once ``index`` is applied, read the state machine."""

    ctx: int
    index: int


@dataclass
class Ready:
    """One batch of work for the host, in the order it must be done:

    1. persist ``snapshot`` (if any), then ``entries`` (the first replaces any
       stored suffix from its index on), then ``hard_state``; if ``must_sync``,
       wait for ``storage.sync()``;
    2. send ``messages`` (votes and acknowledgements only now that they are durable);
    3. install ``snapshot`` into the state machine, apply ``committed`` in order;
    4. serve ``read_states`` once their index is applied; call :meth:`RaftCore.advance`.
    """

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    committed: list[Entry] = field(default_factory=list)
    messages: list[tuple[str, Message]] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    must_sync: bool = False


@dataclass
class _SnapshotBuffer:
    """Chunks of an incoming snapshot, assembled in order."""

    leader: str
    term: int
    index: int
    data: bytearray


class RaftCore:
    """One Raft participant's protocol state. See the module docstring for the protocol
    between core and host; read :meth:`step` and :meth:`tick` first."""

    def __init__(
        self,
        node_id: str,
        members: Iterable[str],
        settings: RaftSettings,
        rand: random.Random,
        *,
        hard_state: HardState | None = None,
        snapshot: Snapshot | None = None,
        entries: Sequence[Entry] = (),
    ) -> None:
        self.id = node_id
        self.settings = settings
        self._rand = rand
        hs = hard_state or HardState()
        self.term = hs.term
        self.vote: str | None = hs.vote or None
        self._snapshot = snapshot
        if snapshot is not None:
            self.log = RaftLog(
                snapshot.index, snapshot.term, [e for e in entries if e.index > snapshot.index]
            )
            self._base_members = tuple(snapshot.members)
        else:
            self.log = RaftLog(0, 0, entries)
            self._base_members = tuple(sorted(set(members)))
        self.role = FOLLOWER
        self.prs: dict[str, Progress] = {}  # leader only: what each member stores
        self.members: tuple[str, ...] = ()
        self.config_index = 0
        self._recompute_members()
        self.commit = min(max(hs.commit, self.log.offset), self.log.last_index)
        self.applied = self.log.offset  # the host restored the snapshot; the rest is replayed
        self._applying = self.log.offset  # highest index handed to the host for applying
        self._persisted = self.log.last_index  # highest index durable in storage
        self._unstable_from = self.log.last_index + 1  # lowest index not yet handed to the host
        self._prev_hard = HardState(self.term, self.vote or "", self.commit)
        self._pending_snapshot: Snapshot | None = None  # received, to persist and install
        self._recv: _SnapshotBuffer | None = None
        self._msgs: list[tuple[str, Message]] = []
        self._read_states: list[ReadState] = []

        self.leader_id: str | None = None
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._timeout = 0
        self._reset_election_timer()
        self._votes: dict[str, bool] = {}
        # leader state
        self._need_broadcast = False
        self._read_seq = 0  # ReadIndex round number carried by heartbeats
        self._need_read_round = False
        self._pending_reads: list[tuple[int, int, int]] = []  # (ctx, read index, round)
        self._reads_waiting: list[int] = []  # ctx of reads before this term's first commit

    # == introspection ============================================================================
    @property
    def quorum(self) -> int:
        return len(self.members) // 2 + 1

    @property
    def is_voter(self) -> bool:
        return self.id in self.members

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def committed_in_term(self) -> bool:
        """Has this leader committed an entry of its own term (its no-op)? Until then it does
        not know the commit index of the cluster (§6.4 of the thesis, ReadIndex step 1)."""
        return self.log.term(self.commit) == self.term

    # == inputs ===================================================================================
    def tick(self) -> None:
        """One tick of time passed."""
        if self.role == LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def step(self, src: str, msg: Message) -> None:
        """Handle a message from ``src``. Term rules first (Figure 2, "all servers")."""
        term = getattr(msg, "term", None)
        if term is None:
            return
        if term > self.term:
            if isinstance(msg, RequestVote):
                if self._in_lease():
                    return  # we hear from a live leader: ignore a disruptive (or removed) node
                if not msg.pre_vote:
                    self._become_follower(term, None)
            elif isinstance(msg, VoteReply) and msg.pre_vote and msg.granted:
                pass  # a pre-vote for term + 1; our term does not change
            else:
                leader = src if isinstance(msg, AppendEntries | Heartbeat | InstallSnapshot) else None
                self._become_follower(term, leader)
        elif term < self.term:
            if isinstance(msg, AppendEntries | Heartbeat | InstallSnapshot):
                # A deposed leader: tell it the current term so that it steps down.
                self._send(src, HeartbeatReply(self.term))
            elif isinstance(msg, RequestVote) and msg.pre_vote:
                self._send(src, VoteReply(self.term, False, pre_vote=True))
            return

        if isinstance(msg, AppendEntries):
            self._on_append(src, msg)
        elif isinstance(msg, AppendReply):
            self._on_append_reply(src, msg)
        elif isinstance(msg, Heartbeat):
            self._on_heartbeat(src, msg)
        elif isinstance(msg, HeartbeatReply):
            self._on_heartbeat_reply(src, msg)
        elif isinstance(msg, RequestVote):
            self._on_request_vote(src, msg)
        elif isinstance(msg, VoteReply):
            self._on_vote_reply(src, msg)
        elif isinstance(msg, InstallSnapshot):
            self._on_install_snapshot(src, msg)
        elif isinstance(msg, SnapshotReply):
            self._on_snapshot_reply(src, msg)

    def propose(self, command: Command) -> tuple[int, int]:
        """Append a client command to the leader's log; returns its (index, term).

        It is committed once a majority stores it; the host learns that from a
        later :class:`Ready` (``committed``). Raises :class:`NotLeader` elsewhere.
        """
        self._check_leader()
        if len(command.op) > self.settings.max_entry_bytes:
            raise RaftError(f"operation of {len(command.op)} bytes exceeds max_entry_bytes")
        entry = Entry(self.log.last_index + 1, self.term, NORMAL, command)
        self._append_local([entry])
        return entry.index, entry.term

    def propose_config(self, *, add: str | None = None, remove: str | None = None) -> tuple[int, int]:
        """Add or remove one server (thesis §4.1): a CONFIG entry, in force once appended.

        One change at a time, and only after the leader committed an entry of its
        term (the fix to the single-server change bug found in 2015, thesis errata).
        """
        self._check_leader()
        if self.config_index > self.commit:
            raise ConfigChangeInProgress(
                f"configuration change at index {self.config_index} not committed yet"
            )
        if not self.committed_in_term():
            raise ConfigChangeInProgress("the new leader has not committed an entry of its term yet")
        members = set(self.members)
        if add is not None:
            members.add(add)
        if remove is not None:
            members.discard(remove)
        if not members:
            raise RaftError("cannot remove the last member")
        entry = Entry(self.log.last_index + 1, self.term, CONFIG, members=tuple(sorted(members)))
        self._append_local([entry])
        return entry.index, entry.term

    def read_index(self, ctx: int) -> None:
        """Start a linearizable read (thesis §6.4, ReadIndex). ``ctx`` names it.

        It comes back in a later Ready as ``ReadState(ctx, index)`` once a quorum
        confirmed this node is still leader; serve it once ``index`` is applied.
        """
        self._check_leader()
        if not self.committed_in_term():
            self._reads_waiting.append(ctx)
            return
        self._start_read(ctx)

    def compact(self, index: int, data: bytes) -> int:
        """The host took a snapshot of the state machine at ``index`` (applied).

        Keeps ``compaction_keep`` entries behind it; returns the last index
        dropped from the log (the host compacts its storage log up to it), 0 if none.
        """
        if index > self.applied:
            raise ValueError(f"cannot snapshot at {index}: only {self.applied} applied")
        if self._snapshot is not None and index <= self._snapshot.index:
            return 0
        term = self.log.term(index)
        if term is None:
            raise ValueError(f"cannot snapshot at {index}: not in the log")
        self._snapshot = Snapshot(index, term, self._config_at(index), data)
        upto = index - self.settings.compaction_keep
        if upto <= self.log.offset:
            return 0
        self._base_members = self._config_at(upto)
        self.log.compact(upto)
        return upto

    # == output ===================================================================================
    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._read_states
            or self._pending_snapshot is not None
            or self._unstable_from <= self.log.last_index
            or self.commit > self._applying
            or (self.role == LEADER and (self._need_broadcast or self._need_read_round))
            or self._hard_state() != self._prev_hard
        )

    def ready(self) -> Ready:
        """Take the pending batch (see :class:`Ready`); call :meth:`advance` once done."""
        if self.role == LEADER:
            if self._need_broadcast:
                self._broadcast_append()
            if self._need_read_round:
                self._broadcast_heartbeat()
        hard = self._hard_state()
        rd = Ready()
        if hard != self._prev_hard:
            rd.hard_state = hard
            rd.must_sync = (hard.term, hard.vote) != (self._prev_hard.term, self._prev_hard.vote)
            self._prev_hard = hard
        if self._pending_snapshot is not None:
            rd.snapshot, self._pending_snapshot = self._pending_snapshot, None
            rd.must_sync = True
        if self._unstable_from <= self.log.last_index:
            rd.entries = self.log.slice(self._unstable_from, self.log.last_index + 1)
            self._unstable_from = self.log.last_index + 1
            rd.must_sync = True
        if self.commit > self._applying:
            rd.committed = self.log.slice(self._applying + 1, self.commit + 1)
            self._applying = self.commit
        if self.role == LEADER and not self.is_voter and self.config_index <= self.commit:
            # We committed our own removal (thesis §4.2.2): step down once the commit went out
            # (above) and the host applies the entry (this batch); the rest elect a new leader.
            self._become_follower(self.term, None)
        rd.messages, self._msgs = self._msgs, []
        rd.read_states, self._read_states = self._read_states, []
        return rd

    def advance(self, rd: Ready) -> None:
        """The host persisted, sent and applied ``rd``."""
        if rd.entries:
            self._persisted = min(rd.entries[-1].index, self._unstable_from - 1)
        elif rd.snapshot is not None:
            self._persisted = min(rd.snapshot.index, self._unstable_from - 1)
        if rd.snapshot is not None:
            self.applied = max(self.applied, rd.snapshot.index)
        if rd.committed:
            self.applied = max(self.applied, rd.committed[-1].index)
        if self.role == LEADER:
            pr = self.prs.get(self.id)
            if pr is not None and pr.maybe_update(self._persisted):
                self._maybe_commit()

    # == roles ====================================================================================
    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote or "", self.commit)

    def _reset_election_timer(self) -> None:
        self._election_elapsed = 0
        ticks = self.settings.election_ticks
        if self.settings.election_timeout_max is None:
            self._timeout = ticks + self._rand.randrange(ticks)  # uniform in [T, 2T)
        else:  # uniform in [T, T_max], both ends included
            self._timeout = ticks + self._rand.randrange(self.settings.election_ticks_max - ticks + 1)

    def _become_follower(self, term: int, leader: str | None) -> None:
        if term != self.term:
            self.term, self.vote = term, None
        self.role = FOLLOWER
        self.leader_id = leader
        self._reset_election_timer()
        self._reset_leader_state()

    def _reset_leader_state(self) -> None:
        self.prs = {}
        self._votes = {}
        self._need_broadcast = self._need_read_round = False
        self._pending_reads = []
        self._reads_waiting = []

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader_id = self.id
        self._votes = {}
        self._heartbeat_elapsed = 0
        self._election_elapsed = 0
        last = self.log.last_index
        self.prs = {m: Progress(last + 1) for m in self.members}
        if self.id in self.prs:
            self.prs[self.id].match = self._persisted
            self.prs[self.id].state = REPLICATE
        # A no-op of the new term: committing it commits everything before (§5.4.2, §8).
        # (The unsafe test variant skips it: the no-op narrows the window in which the
        # Figure 8 bug shows, and that variant exists to be caught.)
        if not self.settings.unsafe_commit_old_terms:
            self._append_local([Entry(last + 1, self.term, NOOP)])

    def _campaign(self, pre_vote: bool) -> None:
        """Start a (pre-)election (§5.2; pre-vote: thesis §9.6)."""
        if pre_vote:
            self.role = PRECANDIDATE
            vote_term = self.term + 1  # only proposed: nothing changes unless a quorum agrees
        else:
            self.role = CANDIDATE
            self.term += 1
            self.vote = self.id
            vote_term = self.term
        self.leader_id = None
        self._reset_election_timer()
        self._reset_leader_state()
        self._votes = {self.id: True}
        if self._tally_won():
            return
        request = RequestVote(vote_term, self.id, self.log.last_index, self.log.last_term, pre_vote)
        for m in self.members:
            if m != self.id:
                self._send(m, request)

    def _tally_won(self) -> bool:
        """Count votes; move on if they decide the (pre-)election."""
        granted = sum(1 for m, ok in self._votes.items() if ok and m in self.members)
        rejected = sum(1 for m, ok in self._votes.items() if not ok and m in self.members)
        if granted >= self.quorum:
            if self.role == PRECANDIDATE:
                self._campaign(pre_vote=False)
            else:
                self._become_leader()
            return True
        if rejected >= self.quorum:
            self._become_follower(self.term, None)
            return True
        return False

    def _in_lease(self) -> bool:
        """Did we hear from a leader less than an election timeout ago? (thesis §4.2.3)"""
        return (
            self.settings.check_quorum
            and self.leader_id is not None
            and self._election_elapsed < self.settings.election_ticks
        )

    def _check_leader(self) -> None:
        if self.role != LEADER:
            raise NotLeader(self.leader_id)

    # == time =====================================================================================
    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._timeout:
            self._reset_election_timer()
            if self.is_voter:  # learners, joiners and removed nodes never campaign
                self._campaign(self.settings.pre_vote)

    def _tick_leader(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.settings.election_ticks:
            self._election_elapsed = 0
            if self.settings.check_quorum and not self._quorum_active():
                self._become_follower(self.term, None)  # we are on the minority side
                return
        if self._heartbeat_elapsed >= self.settings.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = 0
        for m in self.members:
            pr = self.prs.get(m)
            if m == self.id or (pr is not None and pr.recent_active):
                active += 1
            if pr is not None:
                pr.recent_active = False
        return active >= self.quorum

    # == votes ====================================================================================
    def _on_request_vote(self, src: str, msg: RequestVote) -> None:
        up_to_date = self.log.is_up_to_date(msg.last_index, msg.last_term)
        if self.settings.unsafe_vote_for_any_log:
            up_to_date = True  # TEST ONLY: no election restriction (§5.4.1)
        if msg.pre_vote:
            # Would we vote in msg.term? Our own term and vote stay as they are.
            grant = up_to_date and msg.term > self.term
            self._send(src, VoteReply(msg.term if grant else self.term, grant, pre_vote=True))
            return
        can_vote = self.vote == src or (self.vote is None and self.leader_id is None)
        grant = can_vote and up_to_date
        if grant:
            self.vote = src  # durable before the reply leaves: the reply goes out via Ready
            self._reset_election_timer()
        self._send(src, VoteReply(self.term, grant))

    def _on_vote_reply(self, src: str, msg: VoteReply) -> None:
        if msg.pre_vote:
            if self.role != PRECANDIDATE or (msg.granted and msg.term != self.term + 1):
                return
        elif self.role != CANDIDATE:
            return
        self._votes.setdefault(src, msg.granted)
        self._tally_won()

    # == replication: leader side ==================================================================
    def _append_local(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        if any(e.kind == CONFIG for e in entries):
            self._recompute_members()
        self._need_broadcast = True

    def _broadcast_append(self) -> None:
        self._need_broadcast = False
        for m in self.members:
            if m != self.id:
                pr = self.prs[m]
                sent = self._send_append(m, allow_empty=pr.sent_commit < self.commit)
                while sent and pr.state == REPLICATE:
                    sent = self._send_append(m, allow_empty=False)

    def _send_append(self, peer: str, allow_empty: bool = True) -> bool:
        """Send ``peer`` the entries it needs from ``next`` (a batch of at most
        ``max_append_bytes``), or the snapshot when they were compacted. Returns
        whether anything was sent."""
        pr = self.prs[peer]
        if pr.paused(self.settings.max_inflight):
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        if prev_term is None:  # compacted: only a snapshot can catch the follower up
            return self._start_snapshot(peer, pr)
        entries = (
            self.log.batch(pr.next, self.settings.max_append_bytes) if pr.next <= self.log.last_index else []
        )
        if not entries and not allow_empty:
            return False
        self._send(
            peer,
            AppendEntries(self.term, self.id, prev, prev_term, tuple(entries), self.commit, self._read_seq),
        )
        pr.sent_commit = self.commit
        if entries:
            last = entries[-1].index
            if pr.state == REPLICATE:
                pr.next = last + 1  # optimistic: pipelining
                pr.inflight.append(last)
            else:
                pr.probe_sent = True
        return True

    def _start_snapshot(self, peer: str, pr: Progress) -> bool:
        if self._snapshot is None:
            return False
        pr.become_snapshot(self._snapshot.index)
        self._send_snapshot_chunk(peer, pr)
        return True

    def _send_snapshot_chunk(self, peer: str, pr: Progress) -> None:
        snap = self._snapshot
        assert snap is not None
        if pr.pending_snapshot != snap.index:  # we took a newer snapshot meanwhile: send that one
            pr.become_snapshot(snap.index)
        end = pr.snap_offset + self.settings.snapshot_chunk_bytes
        chunk = snap.data[pr.snap_offset : end]
        self._send(
            peer,
            InstallSnapshot(
                self.term, self.id, snap.index, snap.term, snap.members, pr.snap_offset, len(snap.data), chunk
            ),
        )

    def _broadcast_heartbeat(self) -> None:
        self._need_read_round = False
        last = self.log.last_index
        for m in self.members:
            if m == self.id:
                continue
            pr = self.prs[m]
            if not pr.progressed:
                # Stall detection: acknowledgements were lost (the network is best effort).
                if pr.state == REPLICATE and pr.match < last:
                    pr.become_probe()
                elif pr.state == SNAPSHOT:
                    self._send_snapshot_chunk(m, pr)
            pr.progressed = False
            self._send(m, Heartbeat(self.term, self.id, min(pr.match, self.commit), self._read_seq))

    def _on_append_reply(self, src: str, msg: AppendReply) -> None:
        pr = self.prs.get(src)
        if self.role != LEADER or pr is None:
            return
        pr.recent_active = True
        self._confirm(pr, msg.ctx)
        if not msg.success:
            hint = msg.hint_index
            if msg.hint_term > 0:
                hint, _ = self.log.find_conflict_by_term(msg.hint_index, msg.hint_term)
            if pr.maybe_decr_to(msg.index, hint):
                if pr.state == REPLICATE:
                    pr.become_probe()
                self._send_append(src)
            return
        if pr.maybe_update(msg.index):
            if pr.state == PROBE:
                pr.become_replicate()
            elif pr.state == SNAPSHOT and pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
            else:
                pr.free_to(msg.index)
            self._maybe_commit()
            if self.role != LEADER:
                return
        elif pr.state == REPLICATE:
            pr.free_to(msg.index)
        while self._send_append(src, allow_empty=False):
            if pr.state != REPLICATE:
                break

    def _on_heartbeat_reply(self, src: str, msg: HeartbeatReply) -> None:
        pr = self.prs.get(src)
        if self.role != LEADER or pr is None:
            return
        pr.recent_active = True
        self._confirm(pr, msg.ctx)
        if pr.state == PROBE:
            pr.probe_sent = False
        if pr.match < self.log.last_index or pr.sent_commit < self.commit:
            self._send_append(src, allow_empty=pr.state == PROBE)

    def _on_snapshot_reply(self, src: str, msg: SnapshotReply) -> None:
        pr = self.prs.get(src)
        if self.role != LEADER or pr is None:
            return
        pr.recent_active = True
        if pr.state != SNAPSHOT or msg.index != pr.pending_snapshot:
            return
        pr.progressed = True
        if msg.done:
            pr.match = max(pr.match, msg.index)
            pr.become_probe()
            self._send_append(src)
        else:
            pr.snap_offset = msg.next_offset
            self._send_snapshot_chunk(src, pr)

    def _maybe_commit(self) -> bool:
        """Advance the commit index to what a quorum stores (§5.3), but count replicas
        only for an entry of the current term (§5.4.2, Figure 8)."""
        matches = sorted((self.prs[m].match if m in self.prs else 0 for m in self.members), reverse=True)
        n = matches[self.quorum - 1]
        if n <= self.commit:
            return False
        if self.log.term(n) != self.term and not self.settings.unsafe_commit_old_terms:
            return False
        first_in_term = not self.committed_in_term()
        self.commit = n
        self._need_broadcast = True  # let followers learn the new commit index promptly
        if first_in_term and self.committed_in_term():
            waiting, self._reads_waiting = self._reads_waiting, []
            for ctx in waiting:
                self._start_read(ctx)
        return True

    # == ReadIndex ================================================================================
    def _start_read(self, ctx: int) -> None:
        self._read_seq += 1
        self._pending_reads.append((ctx, self.commit, self._read_seq))
        self._need_read_round = True
        self._release_reads()

    def _confirm(self, pr: Progress, ctx: int) -> None:
        if ctx > pr.acked_ctx:
            pr.acked_ctx = ctx
            self._release_reads()

    def _release_reads(self) -> None:
        while self._pending_reads:
            ctx, index, seq = self._pending_reads[0]
            acks = sum(
                1 for m in self.members if m == self.id or (m in self.prs and self.prs[m].acked_ctx >= seq)
            )
            if acks < self.quorum:
                return
            self._pending_reads.pop(0)
            self._read_states.append(ReadState(ctx, index))

    # == replication: follower side ================================================================
    def _heard_from_leader(self, src: str) -> None:
        if self.role != FOLLOWER:
            self._become_follower(self.term, src)
        self.leader_id = src
        self._election_elapsed = 0

    def _on_append(self, src: str, msg: AppendEntries) -> None:
        self._heard_from_leader(src)
        prev_index, prev_term, entries = msg.prev_index, msg.prev_term, list(msg.entries)
        if prev_index < self.commit:
            # Everything up to our commit index is committed, hence identical on the leader.
            entries = [e for e in entries if e.index > self.commit]
            if not entries:
                self._send(src, AppendReply(self.term, True, self.commit, ctx=msg.ctx))
                return
            prev_index, prev_term = self.commit, self.log.term(self.commit) or 0
        if self.log.match_term(prev_index, prev_term):
            written = self.log.merge(entries)
            if written:
                if written <= self.commit:
                    raise AssertionError(f"{self.id}: leader {src} overwrote committed entry {written}")
                self._unstable_from = min(self._unstable_from, written)
                self._persisted = min(self._persisted, written - 1)
                self._recompute_members()
            last_new = prev_index + len(entries)
            self._commit_to(min(msg.commit, last_new))
            self._send(src, AppendReply(self.term, True, last_new, ctx=msg.ctx))
            return
        hint_index, hint_term = self.log.find_conflict_by_term(
            min(prev_index, self.log.last_index), prev_term
        )
        self._send(src, AppendReply(self.term, False, prev_index, hint_index, hint_term, msg.ctx))

    def _on_heartbeat(self, src: str, msg: Heartbeat) -> None:
        self._heard_from_leader(src)
        self._commit_to(min(msg.commit, self.log.last_index))
        self._send(src, HeartbeatReply(self.term, msg.ctx))

    def _commit_to(self, index: int) -> None:
        if index > self.commit:
            self.commit = index

    def _on_install_snapshot(self, src: str, msg: InstallSnapshot) -> None:
        self._heard_from_leader(src)
        if msg.index <= self.commit:  # we have it all already
            self._send(src, SnapshotReply(self.term, msg.index, msg.total, done=True))
            return
        buf = self._recv
        if msg.offset == 0:
            buf = self._recv = _SnapshotBuffer(src, self.term, msg.index, bytearray())
        if buf is None or (buf.leader, buf.term, buf.index) != (src, self.term, msg.index):
            self._send(src, SnapshotReply(self.term, msg.index, 0))  # start over
            return
        if msg.offset == len(buf.data):
            buf.data += msg.data
        if len(buf.data) < msg.total:
            self._send(src, SnapshotReply(self.term, msg.index, len(buf.data)))
            return
        self._recv = None
        snap = Snapshot(msg.index, msg.snap_term, tuple(msg.members), bytes(buf.data))
        self._restore(snap)
        self._send(src, SnapshotReply(self.term, msg.index, msg.total, done=True))

    def _restore(self, snap: Snapshot) -> None:
        """Replace log and state by a leader's snapshot (§7)."""
        if self.log.match_term(snap.index, snap.term):
            # Our log already has it: the entries after it may be valid, keep them (§7).
            self._commit_to(snap.index)
            return
        self.log.restore(snap.index, snap.term)
        self._snapshot = snap
        self._pending_snapshot = snap
        self._base_members = tuple(snap.members)
        self._recompute_members()
        self.commit = self._applying = snap.index
        self._unstable_from = snap.index + 1
        self._persisted = min(self._persisted, snap.index)

    # == membership ===============================================================================
    def _config_at(self, index: int) -> tuple[str, ...]:
        for e in reversed(self.log.slice(self.log.first_index, index + 1)):
            if e.kind == CONFIG:
                return e.members
        return self._base_members

    def _recompute_members(self) -> None:
        """The configuration in force is the last one in the log, committed or not (thesis §4.1)."""
        for e in reversed(self.log.entries):
            if e.kind == CONFIG:
                self.members, self.config_index = tuple(e.members), e.index
                break
        else:
            self.members, self.config_index = self._base_members, self.log.offset
        if self.role == LEADER:
            last = self.log.last_index
            for m in self.members:
                if m not in self.prs:
                    self.prs[m] = Progress(last)  # probe from the config entry back
            for m in list(self.prs):
                if m not in self.members:
                    del self.prs[m]

    # == plumbing =================================================================================
    def _send(self, dst: str, msg: Message) -> None:
        self._msgs.append((dst, msg))

    def __repr__(self) -> str:
        return (
            f"<RaftCore {self.id} {self.role} term={self.term} commit={self.commit} "
            f"last={self.log.last_index} members={list(self.members)}>"
        )
