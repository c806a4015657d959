"""Adaptive state synchronisation (ASS): a key-value map replicated without coordination.

Any replica accepts writes; replicas converge by pushing writes and by anti-entropy; concurrent
writes are kept side by side until a write that read them replaces them (dotted version vectors,
not wall clocks). Start with :class:`StateSync`::

    sync = StateSync(rt, settings=SyncSettings.for_mode("internet"))
    await sync.put("vm/42", b"host-7")
    state = sync.get("vm/42")                   # .values, .context
    await sync.put("vm/42", b"host-9", state.context)   # replaces what was read

* :mod:`.versions`: a key's state (``VersionSet``), pure, with the causality rules;
* :mod:`.store`: one replica's map, with the hash tree anti-entropy compares;
* :mod:`.service`: the protocol on a node (pushes, rumours, anti-entropy, durability);
* :mod:`.reaper`: forgetting deleted keys once every replica holds their tombstone;
* :mod:`.client`: reads and writes from a process that holds no replica.
"""

from .client import NoReplicaAnswered, StateClient
from .service import (
    StateReply,
    StateRequest,
    StateSync,
    SyncDigest,
    SyncKeys,
    SyncPull,
    SyncPush,
    SyncSettings,
    SyncStats,
)
from .store import ReplicaStore
from .versions import Summary, VersionSet, VersionVector, Writer, ahead

__all__ = [
    "NoReplicaAnswered",
    "StateClient",
    "StateReply",
    "StateRequest",
    "ReplicaStore",
    "StateSync",
    "Summary",
    "SyncDigest",
    "SyncKeys",
    "SyncLeaves",
    "SyncPull",
    "SyncPush",
    "SyncSettings",
    "SyncStats",
    "VersionSet",
    "VersionVector",
    "Writer",
    "ahead",
]
