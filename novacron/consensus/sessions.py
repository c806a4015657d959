"""Client sessions: a retried command is applied once, its first result returned again.

A client that times out cannot know whether its command was applied, so it
retries with the same sequence number. Raft (§6.3 of Ongaro's thesis) and
PBFT (the client timestamp) both answer that the same way: the replicated
state remembers, per client, the last sequence number applied and its
result. The table is part of the replicated state, so it is in every
snapshot and every replica decides alike.
"""

from __future__ import annotations

import msgspec

from .api import Command, StateMachine

#: result of a command older than the client's last applied one (the client moved on already)
STALE = b"\x00stale"


class _Session(msgspec.Struct, array_like=True):
    seq: int
    result: bytes
    touched: int  # the apply count when last used, for eviction


class _Snapshot(msgspec.Struct, array_like=True):
    inner: bytes
    sessions: dict[str, _Session]
    applied: int


class Sessions:
    """Wraps a :class:`StateMachine` with per-client deduplication.

    ``max_sessions`` bounds the table; the least recently used client is
    forgotten first (a command retried after its client was evicted would
    apply twice, so keep the bound well above the number of live clients).
    """

    def __init__(self, inner: StateMachine, *, max_sessions: int = 10_000) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1, got {max_sessions}")
        self.inner = inner
        self.max_sessions = max_sessions
        self._sessions: dict[str, _Session] = {}
        self.applied = 0  # commands applied (duplicates excluded)

    def apply(self, command: Command) -> bytes:
        """Apply ``command`` unless it is a retry; returns its (first) result."""
        session = self._sessions.get(command.client)
        if session is not None:
            if command.seq == session.seq:
                return session.result
            if command.seq < session.seq:
                return STALE
        result = self.inner.apply(command.op)
        self.applied += 1
        if session is None:
            if len(self._sessions) >= self.max_sessions:
                oldest = min(self._sessions, key=lambda c: (self._sessions[c].touched, c))
                del self._sessions[oldest]
            self._sessions[command.client] = _Session(command.seq, result, self.applied)
        else:
            session.seq, session.result, session.touched = command.seq, result, self.applied
        return result

    def duplicate(self, command: Command) -> bytes | None:
        """The cached result if ``command`` was applied already (so a replica can answer a
        retry without ordering it again); None if it is new."""
        session = self._sessions.get(command.client)
        if session is None or command.seq > session.seq:
            return None
        return session.result if command.seq == session.seq else STALE

    def query(self, op: bytes) -> bytes:
        return self.inner.query(op)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_Snapshot(self.inner.snapshot(), self._sessions, self.applied))

    def restore(self, snapshot: bytes) -> None:
        state = msgspec.msgpack.decode(snapshot, type=_Snapshot)
        self.inner.restore(state.inner)
        self._sessions = dict(state.sessions)
        self.applied = state.applied
