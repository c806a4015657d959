"""What every consensus protocol shares: the replicated state machine, the
client messages, and the hooks a test harness observes replicas through.

Raft (:mod:`.raft`) and PBFT (:mod:`.pbft`) order :class:`Command` values;
both hand each committed command to a :class:`StateMachine` wrapped in
:class:`~novacron.consensus.sessions.Sessions` (so a retried command applies
once), and both speak to clients with :class:`ClientRequest` /
:class:`ClientReply`. That is why one client (:mod:`.client`) and one
deterministic-simulation campaign (:mod:`novacron.sim.dst`) serve both.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from novacron.runtime import Message


class StateMachine(Protocol):
    """The deterministic service being replicated (e.g. :class:`~.kv.KVStore`).

    ``apply`` must be a pure function of the state and the operation: every
    replica applies the same operations in the same order and must end in
    the same state. An operation it cannot execute (malformed, wrong type)
    returns an error *result*; raising would stop the replica, and a
    client's bad input must not do that.
    """

    def apply(self, op: bytes) -> bytes:
        """Execute a (committed) operation; returns its result."""
        ...

    def query(self, op: bytes) -> bytes:
        """Execute a read-only operation against the current state (no change)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, for log compaction and for handing over to another protocol."""
        ...

    def restore(self, snapshot: bytes) -> None:
        """Replace the whole state with a :meth:`snapshot`."""
        ...


class Command(msgspec.Struct, frozen=True, array_like=True):
    """One client operation as it is ordered: who sent it, its per-client
    sequence number (for exactly-once application), and the operation."""

    client: str
    seq: int
    op: bytes


def client_node(client: str) -> str:
    """The node a client id lives on: ids are ``"<node>"`` or ``"<node>/<name>"``, so that
    one node (one process, one address) can host many clients and replicas know where
    to send their replies and whose identity vouches for a request."""
    return client.split("/", 1)[0]


class ClientRequest(Message, tag="consensus-request"):
    """A client asks a replica to execute ``op``.

    ``seq`` increases per client and is reused on a retry, so a replica can
    recognise a retry of a command it already applied. ``read`` marks an
    operation that changes nothing: Raft serves it with ReadIndex instead
    of a log entry. ``auth`` carries the client's signature where the
    protocol wants one (PBFT); Raft ignores it.
    """

    client: str
    seq: int
    op: bytes
    read: bool = False
    auth: bytes = b""


class ClientReply(Message, tag="consensus-reply"):
    """A replica's answer to one request.

    ``ok`` with ``result`` when the operation executed; otherwise ``error``
    says why not, and ``leader`` (when known) where to retry: Raft
    followers redirect to the leader, PBFT backups name the primary.
    ``view`` is the Raft term or the PBFT view the reply was made in.
    """

    client: str
    seq: int
    replica: str
    ok: bool
    result: bytes = b""
    error: str = ""
    leader: str = ""
    view: int = 0


class Observer(Protocol):
    """What a replica reports to whoever checks it (the DST campaign, tests).

    A replica calls these as events happen; the observer lives outside the
    replica, so what it recorded survives the replica's crash. Every method
    has a do-nothing default in :class:`NullObserver`.
    """

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        """``node`` applied ``command`` at log/sequence position ``index``."""
        ...

    def leader(self, node: str, term: int) -> None:
        """``node`` became leader (Raft) or primary (PBFT) of ``term`` (the term or view)."""
        ...

    def restored(self, node: str, index: int) -> None:
        """``node`` replaced its state with a snapshot covering everything up to ``index``."""
        ...

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        """``node`` holds proof that ``culprit`` misbehaved (e.g. signed two conflicting messages)."""
        ...


class NullObserver:
    """An :class:`Observer` that ignores everything (the default outside tests)."""

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        pass

    def leader(self, node: str, term: int) -> None:
        pass

    def restored(self, node: str, index: int) -> None:
        pass

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        pass
