"""The real backend: NovaCron's runtime contract on asyncio, TCP/TLS and SQLite.

Protocol code written against :mod:`novacron.runtime` runs here unchanged:

* :class:`AsyncioRuntime` — one node: clock on the event loop, length-prefixed
  message frames, record streams (``open_stream``) and multi-stream bulk
  transfers over TCP (optionally mTLS), bounded per-peer queues with
  reconnect and backoff;
* :class:`SQLiteStorage` — durable log + key-value area (WAL, fsync on sync);
* :class:`LocalCluster` — several nodes in one loop on loopback, with crash
  and restart, for tests and notebooks;
* :func:`select_transport` — RDMA-or-TCP selection with a logged reason;
* :func:`new_event_loop` — uvloop when installed;
* :class:`TLSConfig`, :func:`make_test_pki` — certificates for mTLS.
"""

from .cluster import LocalCluster
from .directory import PeerAddress, PeerDirectory
from .loop import new_event_loop
from .options import RuntimeOptions
from .rdma import TransportChoice, select_transport
from .runtime import AsyncioRuntime
from .stats import NetworkStats
from .storage import SQLiteStorage
from .tls import TestPKI, TLSConfig, make_test_pki, peer_identities

__all__ = [
    "AsyncioRuntime",
    "LocalCluster",
    "NetworkStats",
    "PeerAddress",
    "PeerDirectory",
    "RuntimeOptions",
    "SQLiteStorage",
    "TLSConfig",
    "TestPKI",
    "TransportChoice",
    "make_test_pki",
    "new_event_loop",
    "peer_identities",
    "select_transport",
]
