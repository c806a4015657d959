"""What Raft stores and sends: log entries, hard state, snapshots and the RPCs.

The RPCs of the Raft paper (Figure 2) become one-way messages: a reply is a
message of its own, matched by term and index rather than by a call, so the
leader can pipeline (several AppendEntries in flight to one follower) and
the best-effort network may lose, duplicate or reorder any of them. Every
wire tag starts with ``raft-`` so that no other protocol clashes with it.
"""

from __future__ import annotations

import msgspec

from novacron.consensus.api import Command
from novacron.runtime import Message

# -- log entries -------------------------------------------------------------------------------

#: A client command (``Entry.command``), applied to the state machine.
NORMAL = 0
#: The empty entry a new leader appends: committing it commits everything before (§5.4.2).
NOOP = 1
#: A configuration change (``Entry.members``), effective as soon as it is in a log (thesis §4.1).
CONFIG = 2


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One log entry. It is also the storage record: ``msgpack(Entry)`` at the same index."""

    index: int
    term: int
    kind: int = NORMAL
    command: Command | None = None
    members: tuple[str, ...] = ()


def entry_size(entry: Entry) -> int:
    """A cheap estimate of the encoded size, for batching (no encoding on the hot path)."""
    size = 24 + sum(len(m) + 2 for m in entry.members)
    command = entry.command
    if command is not None:
        size += len(command.op) + len(command.client) + 12
    return size


class HardState(msgspec.Struct, frozen=True, array_like=True):
    """What must be durable before a node answers anyone: its term and vote (Figure 2,
    "persistent state"). ``commit`` is stored too, only to replay faster after a restart."""

    term: int = 0
    vote: str = ""
    commit: int = 0


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """The state machine after applying entries up to ``index`` (of ``term``), and the
    configuration in force at that point."""

    index: int
    term: int
    members: tuple[str, ...]
    data: bytes


# -- RPCs --------------------------------------------------------------------------------------


class RequestVote(Message, tag="raft-vote"):
    """A (pre-)candidate asks for a vote. With ``pre_vote`` nothing changes on the
    receiver: it only says whether it *would* vote in ``term``."""

    term: int
    candidate: str
    last_index: int
    last_term: int
    pre_vote: bool = False


class VoteReply(Message, tag="raft-vote-reply"):
    term: int
    granted: bool
    pre_vote: bool = False


class AppendEntries(Message, tag="raft-append"):
    """Entries after ``prev_index`` (which must hold ``prev_term`` on the follower: the
    consistency check). ``ctx`` is echoed in the reply: it confirms leadership for ReadIndex."""

    term: int
    leader: str
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int
    ctx: int = 0


class AppendReply(Message, tag="raft-append-reply"):
    """``success``: the follower's log matches up to ``index``. Otherwise ``index`` is the
    rejected ``prev_index`` and (``hint_index``, ``hint_term``) the follower's last entry
    at or before it with a term <= ``prev_term``: the leader skips a whole term at once."""

    term: int
    success: bool
    index: int
    hint_index: int = 0
    hint_term: int = 0
    ctx: int = 0


class Heartbeat(Message, tag="raft-heartbeat"):
    """Leader liveness, the commit index (never beyond what the follower acknowledged),
    and a ReadIndex round number ``ctx``."""

    term: int
    leader: str
    commit: int
    ctx: int = 0


class HeartbeatReply(Message, tag="raft-heartbeat-reply"):
    term: int
    ctx: int = 0


class InstallSnapshot(Message, tag="raft-snapshot"):
    """One chunk (``data`` at ``offset`` of ``total`` bytes) of the leader's snapshot."""

    term: int
    leader: str
    index: int
    snap_term: int
    members: tuple[str, ...]
    offset: int
    total: int
    data: bytes


class SnapshotReply(Message, tag="raft-snapshot-reply"):
    """The follower wants the chunk at ``next_offset``, or has the whole snapshot (``done``)."""

    term: int
    index: int
    next_offset: int
    done: bool = False


RAFT_MESSAGE_TYPES: tuple[type[Message], ...] = (
    RequestVote,
    VoteReply,
    AppendEntries,
    AppendReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    SnapshotReply,
)
