"""How Raft's durable state maps onto the node's storage (``rt.storage``).

* key ``raft/hard``: the :class:`~.messages.HardState` (term, vote, commit);
* key ``raft/snapshot``: the latest :class:`~.messages.Snapshot` (state machine + config);
* the storage log: one record per entry, at the entry's own index, holding
  ``msgpack(Entry)``. Compaction drops records behind the snapshot;
  installing a leader's snapshot resets the log to start after it.

Nothing here is durable until ``await storage.sync()``: the host syncs before
sending the messages of a batch (Figure 2: "respond to RPCs only after
updating stable storage"). A crash loses unsynced writes; :func:`load` reads
whatever survived, which is always a consistent prefix of what was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from novacron.runtime import Storage

from .messages import Entry, HardState, Snapshot

HARD_KEY = "raft/hard"
SNAPSHOT_KEY = "raft/snapshot"

_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(Entry)
_hard_decoder = msgspec.msgpack.Decoder(HardState)
_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def encode(value: Entry | HardState | Snapshot) -> bytes:
    return _encoder.encode(value)


@dataclass
class Recovered:
    """What a restarting node finds in its storage."""

    hard_state: HardState | None = None
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)


def load(storage: Storage) -> Recovered:
    """Read the durable Raft state (empty on a fresh node)."""
    raw = storage.get(HARD_KEY)
    hard = _hard_decoder.decode(raw) if raw is not None else None
    raw = storage.get(SNAPSHOT_KEY)
    snapshot = _snapshot_decoder.decode(raw) if raw is not None else None
    start = max(storage.first_index, snapshot.index + 1 if snapshot else 1)
    entries: list[Entry] = []
    if start <= storage.last_index:
        entries = [_entry_decoder.decode(r) for r in storage.entries(start)]
    return Recovered(hard, snapshot, entries)


def save_entries(storage: Storage, entries: list[Entry]) -> None:
    """Write entries at their indexes, replacing any stored suffix from the first one on."""
    first = entries[0].index
    if first <= storage.last_index:
        storage.truncate(first)
    if first != storage.last_index + 1:
        raise AssertionError(f"entry {first} does not follow the stored log ending at {storage.last_index}")
    storage.append([_encoder.encode(e) for e in entries])


def save_snapshot(storage: Storage, snapshot: Snapshot, *, reset_log: bool) -> None:
    """Store a snapshot; ``reset_log`` for a leader's snapshot that replaces the whole log."""
    storage.put(SNAPSHOT_KEY, _encoder.encode(snapshot))
    if reset_log:
        storage.reset(snapshot.index + 1)
