"""Raft (Ongaro & Ousterhout 2014): a pure core and its host on the runtime contract.

* :class:`RaftNode` (``node.py``): the replica an app starts; clients talk to it
  with :class:`~novacron.consensus.ClientRequest` messages.
* :class:`RaftSettings` (``settings.py``): timeouts per network mode, batching,
  snapshots, and the test-only ``unsafe_commit_old_terms`` bug switch.
* :class:`RaftCore` (``core.py``): the I/O-free protocol, for advanced hosts and tests.

Lease reads are not implemented: every read goes through ReadIndex, which
needs one heartbeat round but no bound on clock drift.
"""

from .core import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    PRECANDIDATE,
    ConfigChangeInProgress,
    NotLeader,
    RaftCore,
    RaftError,
    ReadState,
    Ready,
)
from .messages import CONFIG, NOOP, NORMAL, Entry, HardState, Snapshot
from .node import RaftNode
from .settings import RaftSettings

__all__ = [
    "CANDIDATE",
    "CONFIG",
    "FOLLOWER",
    "LEADER",
    "NOOP",
    "NORMAL",
    "PRECANDIDATE",
    "ConfigChangeInProgress",
    "Entry",
    "HardState",
    "NotLeader",
    "RaftCore",
    "RaftError",
    "RaftNode",
    "RaftSettings",
    "ReadState",
    "Ready",
    "Snapshot",
]
