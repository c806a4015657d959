"""The host: binds the pure :class:`~.core.RaftCore` to the runtime contract.

It owns everything with side effects: the tick timer (``rt.call_later``),
the node's storage, the network, the replicated state machine (wrapped in
:class:`~novacron.consensus.sessions.Sessions`) and the clients waiting for
answers. Its one loop (:meth:`RaftNode._process`) handles each
:class:`~.core.Ready` batch in the order Raft's safety needs::

    persist (entries, hard state, snapshot) -> await storage.sync()
    -> send messages -> apply committed entries -> answer clients -> advance

Start it as an app, once per node, with the same initial ``members`` on all::

    sim.start(lambda rt: RaftNode(rt, members=["n0", "n1", "n2"], state_machine=KVStore()))

A node whose id is not in ``members`` starts passive (it never campaigns)
until a leader's configuration includes it: that is how a new server joins
(:meth:`RaftNode.add_member` on the leader).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from novacron.consensus.api import ClientReply, ClientRequest, Command, NullObserver, Observer, StateMachine
from novacron.consensus.sessions import Sessions
from novacron.runtime import Message, Runtime

from . import persist
from .core import LEADER, ConfigChangeInProgress, NotLeader, RaftCore, RaftError, ReadState, Ready
from .messages import CONFIG, NORMAL, RAFT_MESSAGE_TYPES, AppendEntries, Entry, Heartbeat, InstallSnapshot
from .settings import RaftSettings

log = logging.getLogger(__name__)

#: what only a leader sends; safe to send before its own disk write completes (see _process)
_LEADER_MESSAGES = (AppendEntries, Heartbeat, InstallSnapshot)

#: How a waiting request learns its fate: ``(ok, result, error)``.
Callback = Callable[[bool, bytes, str], None]

NOT_LEADER = "not leader"
BUSY = "busy"


def _as_settings(settings: Any) -> RaftSettings:
    if settings is None:
        return RaftSettings()
    if isinstance(settings, RaftSettings):
        return settings
    if hasattr(settings, "heartbeat_interval") and hasattr(settings, "election_timeout"):
        return RaftSettings.from_config(settings)  # novacron.config.ConsensusConfig
    raise TypeError(f"settings must be a RaftSettings or a ConsensusConfig, got {type(settings).__name__}")


class RaftNode:
    """One Raft replica on a runtime: clients send it :class:`ClientRequest` messages."""

    def __init__(
        self,
        rt: Runtime,
        members: Iterable[str],
        state_machine: StateMachine,
        settings: RaftSettings | Any = None,
        *,
        observer: Observer | None = None,
        max_sessions: int = 10_000,
    ) -> None:
        self.rt = rt
        self.settings = _as_settings(settings)
        self.observer: Observer = observer if observer is not None else NullObserver()
        # A ready-made Sessions (e.g. handed over from another protocol, with its client
        # table) is used as it is; a bare state machine gets a fresh one.
        if isinstance(state_machine, Sessions):
            self._sessions = state_machine
        else:
            self._sessions = Sessions(state_machine, max_sessions=max_sessions)
        recovered = persist.load(rt.storage)
        if recovered.snapshot is not None:
            self._sessions.restore(recovered.snapshot.data)
        self.core = RaftCore(
            rt.node_id,
            members,
            self.settings,
            rt.random,
            hard_state=recovered.hard_state,
            snapshot=recovered.snapshot,
            entries=recovered.entries,
        )
        self._applied = self.core.applied
        if recovered.snapshot is not None:
            self.observer.restored(rt.node_id, recovered.snapshot.index)
        self._pending: dict[int, tuple[int, Callback]] = {}  # log index -> (term, callback)
        self._reads: dict[int, tuple[bytes, Callback]] = {}  # read ctx -> (query, callback)
        self._released: list[ReadState] = []
        self._read_ctx = 0
        self._led_term: int | None = None
        self._processing = False
        self._stopped = False
        # In-process proposals are a client of their own (exactly-once, like any client).
        self._local_client = f"local:{rt.node_id}:{rt.random.getrandbits(64):016x}"
        self._local_seq = 0
        for message_type in RAFT_MESSAGE_TYPES:
            rt.on_message(message_type, self._on_raft)
        rt.on_message(ClientRequest, self._on_client)
        self._timer = rt.call_later(self.settings.tick_interval, self._on_tick)
        self._kick()  # after a restart: replay the committed entries behind the snapshot

    # == introspection (read-only, for tests and the safety checker) ==============================
    @property
    def node_id(self) -> str:
        return self.rt.node_id

    @property
    def role(self) -> str:
        return self.core.role

    @property
    def is_leader(self) -> bool:
        return self.core.role == LEADER

    @property
    def term(self) -> int:
        return self.core.term

    @property
    def leader_id(self) -> str | None:
        return self.core.leader_id

    @property
    def commit_index(self) -> int:
        return self.core.commit

    @property
    def applied_index(self) -> int:
        return self._applied

    @property
    def members(self) -> tuple[str, ...]:
        return self.core.members

    @property
    def state_machine(self) -> Sessions:
        return self._sessions

    def log_terms(self) -> list[tuple[int, int]]:
        """(index, term) of every entry still in the log (after the last compaction)."""
        return [(e.index, e.term) for e in self.core.log.entries]

    # == in-process API ===========================================================================
    async def propose(self, op: bytes) -> bytes:
        """Replicate ``op`` and return its result once applied (leader only, else :class:`NotLeader`)."""
        self._local_seq += 1
        command = Command(self._local_client, self._local_seq, op)
        return await self._wait(lambda done: self._submit(command, done))

    async def read(self, op: bytes) -> bytes:
        """A linearizable read through ReadIndex (leader only, else :class:`NotLeader`)."""
        return await self._wait(lambda done: self._submit_read(op, done))

    async def add_member(self, node_id: str, *, timeout: float | None = None) -> None:
        """Add a server (leader only); returns once the configuration entry is committed."""
        await self._change_config(timeout, add=node_id)

    async def remove_member(self, node_id: str, *, timeout: float | None = None) -> None:
        """Remove a server (leader only; it may be the leader itself, which then steps down)."""
        await self._change_config(timeout, remove=node_id)

    def stop(self) -> None:
        """Cancel the timer and fail waiting requests (a clean shutdown; a crash needs none)."""
        if self._stopped:
            return
        self._stopped = True
        self._timer.cancel()
        self._fail_all("stopped")

    async def _change_config(self, timeout: float | None, **change: str) -> None:
        deadline = self.rt.now() + (timeout if timeout is not None else 20 * self.settings.election_timeout)
        while True:
            try:
                index, term = self.core.propose_config(**change)
                break
            except ConfigChangeInProgress:
                if self.rt.now() >= deadline:
                    raise
                await self.rt.sleep(self.settings.heartbeat_interval)

        def submit(done: Callback) -> None:
            self._pending[index] = (term, done)
            self._kick()

        await self._wait(submit)

    async def _wait(self, submit: Callable[[Callback], None]) -> bytes:
        future = self.rt.create_future()

        def done(ok: bool, result: bytes, error: str) -> None:
            if future.done():
                return
            if ok:
                future.set_result(result)
            elif error == NOT_LEADER:
                future.set_exception(NotLeader(self.core.leader_id))
            else:
                future.set_exception(RaftError(error))

        submit(done)
        return await future

    # == clients ==================================================================================
    def _on_client(self, src: str, req: ClientRequest) -> None:
        if self._stopped:
            return

        def reply(ok: bool, result: bytes, error: str) -> None:
            leader = self.core.leader_id or ""
            self.rt.send(
                src,
                ClientReply(req.client, req.seq, self.rt.node_id, ok, result, error, leader, self.core.term),
            )

        if req.read:
            self._submit_read(req.op, reply)
        else:
            self._submit(Command(req.client, req.seq, req.op), reply)

    def _busy(self) -> bool:
        return len(self._pending) + len(self._reads) >= self.settings.max_pending

    def _submit(self, command: Command, done: Callback) -> None:
        if self.core.role != LEADER:
            done(False, b"", NOT_LEADER)
            return
        cached = self._sessions.duplicate(command)
        if cached is not None:  # a retry of a command already applied: answer, don't reorder
            done(True, cached, "")
            return
        if self._busy():
            done(False, b"", BUSY)
            return
        try:
            index, term = self.core.propose(command)
        except RaftError as exc:
            done(False, b"", NOT_LEADER if isinstance(exc, NotLeader) else str(exc))
            return
        self._pending[index] = (term, done)
        self._kick()

    def _submit_read(self, op: bytes, done: Callback) -> None:
        if self.core.role != LEADER:
            done(False, b"", NOT_LEADER)
            return
        if self._busy():
            done(False, b"", BUSY)
            return
        self._read_ctx += 1
        self._reads[self._read_ctx] = (op, done)
        self.core.read_index(self._read_ctx)
        self._kick()

    def _fail_all(self, error: str) -> None:
        pending, self._pending = self._pending, {}
        reads, self._reads = self._reads, {}
        self._released = []
        for _, done in pending.values():
            done(False, b"", error)
        for _, done in reads.values():
            done(False, b"", error)

    # == events ===================================================================================
    def _on_raft(self, src: str, msg: Message) -> None:
        if self._stopped:
            return
        self.core.step(src, msg)
        self._after_event()

    def _on_tick(self) -> None:
        if self._stopped:
            return
        self._timer = self.rt.call_later(self.settings.tick_interval, self._on_tick)
        self.core.tick()
        self._after_event()

    def _after_event(self) -> None:
        self._check_role()
        self._kick()

    def _check_role(self) -> None:
        """Tell the observer about a new leadership; fail requests when it is lost (they
        may still commit: a client retries with the same seq and Sessions dedups)."""
        core = self.core
        leading = core.role == LEADER
        if self._led_term is not None and (not leading or core.term != self._led_term):
            self._led_term = None
            self._fail_all(NOT_LEADER)
        if leading and self._led_term is None:
            self._led_term = core.term
            self.observer.leader(self.rt.node_id, core.term)

    def _kick(self) -> None:
        if not self._processing and not self._stopped and self.core.has_ready():
            self._processing = True
            self.rt.spawn(self._process())

    async def _process(self) -> None:
        """Handle Ready batches until there are none (one loop at a time per node)."""
        try:
            while not self._stopped and self.core.has_ready():
                rd = self.core.ready()
                self._persist(rd)
                messages = rd.messages
                if rd.must_sync:
                    # A leader replicates while its own disk writes (thesis §10.2.1): its copy
                    # counts towards a quorum only once synced, so this is safe and saves a
                    # sync on every commit's critical path. Replies and votes wait: term,
                    # vote and log are durable before this node answers anyone.
                    early = [(d, m) for d, m in messages if isinstance(m, _LEADER_MESSAGES)]
                    for dst, msg in early:
                        self.rt.send(dst, msg)
                    messages = [(d, m) for d, m in messages if not isinstance(m, _LEADER_MESSAGES)]
                    await self.rt.storage.sync()
                    if self._stopped:
                        return
                for dst, msg in messages:
                    self.rt.send(dst, msg)
                if rd.snapshot is not None:
                    self._install(rd)
                self._apply(rd.committed)
                self._released.extend(rd.read_states)
                self._serve_reads()
                self.core.advance(rd)
                self._maybe_snapshot()
                self._check_role()
        finally:
            self._processing = False

    def _persist(self, rd: Ready) -> None:
        storage = self.rt.storage
        if rd.snapshot is not None:
            persist.save_snapshot(storage, rd.snapshot, reset_log=True)
        if rd.entries:
            persist.save_entries(storage, rd.entries)
        if rd.hard_state is not None:
            storage.put(persist.HARD_KEY, persist.encode(rd.hard_state))

    def _install(self, rd: Ready) -> None:
        snap = rd.snapshot
        assert snap is not None
        self._sessions.restore(snap.data)
        self._applied = snap.index
        for index in [i for i in self._pending if i <= snap.index]:
            _, done = self._pending.pop(index)
            done(False, b"", "dropped")
        self.observer.restored(self.rt.node_id, snap.index)

    def _apply(self, entries: list[Entry]) -> None:
        for e in entries:
            if e.index <= self._applied:
                continue
            result = b""
            if e.kind == NORMAL and e.command is not None:
                result = self._sessions.apply(e.command)
                self.observer.applied(self.rt.node_id, e.index, e.command, result)
            self._applied = e.index
            waiting = self._pending.pop(e.index, None)
            if waiting is not None:
                term, done = waiting
                if term == e.term:
                    done(True, result, "")
                else:  # another leader's entry took the slot: ours was lost
                    done(False, b"", "dropped")
            if e.kind == CONFIG:
                log.debug("%s applied configuration %s at %d", self.rt.node_id, e.members, e.index)

    def _serve_reads(self) -> None:
        while self._released and self._released[0].index <= self._applied:
            state = self._released.pop(0)
            waiting = self._reads.pop(state.ctx, None)
            if waiting is not None:
                op, done = waiting
                done(True, self._sessions.query(op), "")

    def _maybe_snapshot(self) -> None:
        every = self.settings.snapshot_every
        snap = self.core.snapshot
        if not every or self.core.applied - (snap.index if snap else 0) < every:
            return
        index = self.core.applied
        upto = self.core.compact(index, self._sessions.snapshot())
        snap = self.core.snapshot
        assert snap is not None and snap.index == index
        storage = self.rt.storage
        # Durable with the next sync; a crash before it keeps the (uncompacted) log instead.
        persist.save_snapshot(storage, snap, reset_log=False)
        if upto:
            storage.compact(upto + 1)

    def __repr__(self) -> str:
        return f"<RaftNode {self.rt.node_id} {self.core!r}>"
