"""One real node in this process: what ``novacron node`` runs.

The command line (:mod:`novacron.cli.node_cmd`) parses and validates; this
module owns the asyncio side: the runtime, its storage, the protocols it
runs (heartbeats or a consensus member, state sync, VM hosting), its HTTP endpoints
(``/healthz``, ``/metrics``: :mod:`.endpoints`), signal handling and a
bounded shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novacron.config import NovaCronConfig
from novacron.consensus.adaptive import start_member
from novacron.consensus.kv import KVStore
from novacron.hosting import VMHost
from novacron.mode import ModeDetector
from novacron.monitoring import HeartbeatService
from novacron.runtime import Storage
from novacron.security import EncryptedStorage, StorageKeyError, load_key
from novacron.security.storage import CANARY
from novacron.sync import StateSync

from .directory import PeerDirectory
from .endpoints import EndpointBindError, NodeEndpoints
from .options import RuntimeOptions
from .rdma import select_transport
from .runtime import AsyncioRuntime
from .storage import SQLiteStorage
from .tls import TLSConfig
from .vm import BufferHypervisor

log = logging.getLogger("novacron.node")


@dataclass(frozen=True)
class ConsensusMember:
    """This node's part in a replicated key-value store."""

    protocol: str  # raft | pbft
    members: tuple[str, ...]
    keyring: Any = None  # PBFT: this node's signing key and the members' public keys


async def serve(
    config: NovaCronConfig,
    peers: PeerDirectory,
    tls: TLSConfig | None,
    *,
    region: str = "",
    zone: str = "",
    consensus: ConsensusMember | None = None,
) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit code.

    With ``consensus``, the node is a member of a replicated key-value store
    (Raft or PBFT) and serves ``novacron kv`` clients; otherwise it runs
    heartbeats to its peers. With ``dwcp.enable_v3_state_sync`` it is also a
    replica of the ASS map (the consensus members', or its peers'), whose
    settings follow the network mode (forced, or detected), and serves
    ``novacron state`` clients.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    system, network, dwcp = config.system, config.network, config.dwcp
    choice = select_transport(dwcp.transport.enable_rdma)
    try:
        storage = open_storage(config)
    except (OSError, StorageKeyError) as exc:
        log.error("cannot open storage in %s: %s", system.data_dir, exc)
        return 1
    options = RuntimeOptions(
        max_connections=network.max_connections,
        stream_timeout=dwcp.transport.stream_timeout,
        max_streams=dwcp.transport.max_streams,
    )
    rt = AsyncioRuntime(
        system.node_id,
        directory=peers,
        host=network.listen_address,
        port=network.bind_port,
        region=region,
        zone=zone,
        storage=storage,
        tls=tls,
        options=options,
    )
    try:
        await rt.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", network.listen_address, network.bind_port, exc)
        storage.close()
        return 1
    parts = _start_components(rt, config, consensus)
    endpoints = NodeEndpoints(
        config,
        rt,
        heartbeat=parts.heartbeat,
        consensus=parts.member,
        state_sync=parts.state_sync,
        detector=parts.detector,
        hosting=parts.hosting,
    )
    try:
        await endpoints.start()
    except EndpointBindError as exc:
        log.error("%s", exc)
        await _shutdown(rt, parts, endpoints, system.shutdown_timeout)
        return 1
    log.info(
        "node %s started: listening on %s:%d, peers %s, bulk transport %s (%s)",
        system.node_id,
        *rt.address,
        ", ".join(rt.peers) or "none",
        choice.kind,
        choice.reason,
    )

    await stop.wait()
    log.info("node %s stopping (signal received)", system.node_id)
    return 0 if await _shutdown(rt, parts, endpoints, system.shutdown_timeout) else 1


def open_storage(config: NovaCronConfig) -> Storage:
    """The node's SQLite file in ``system.data_dir``, encrypted at rest when
    ``security.enable_encryption`` has a key file (:mod:`novacron.security.storage`)."""
    system, security = config.system, config.security
    data_dir = Path(system.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = SQLiteStorage(data_dir / f"{system.node_id}.sqlite3")
    if not (security.enable_encryption and security.encryption_key_file):
        if storage.get(CANARY) is not None:
            storage.close()
            raise StorageKeyError(
                "this storage is encrypted: the node needs security.enable_encryption and its "
                "security.encryption_key_file"
            )
        return storage
    try:
        encrypted = EncryptedStorage(storage, load_key(security.encryption_key_file))
    except StorageKeyError:
        storage.close()
        raise
    log.info("storage encrypted at rest (key from %s)", security.encryption_key_file)
    return encrypted


@dataclass
class _Components:
    """The protocols a node runs on its runtime (``None``: not running)."""

    member: Any = None  # a consensus member (what start_member returns)
    heartbeat: HeartbeatService | None = None
    state_sync: StateSync | None = None
    detector: ModeDetector | None = None
    hosting: VMHost | None = None

    def stop(self) -> None:
        for component in (self.heartbeat, self.member, self.state_sync):
            if component is not None:
                component.stop()
        if self.hosting is not None:
            self.hosting.close()  # the guests go with the node


def _start_components(
    rt: AsyncioRuntime, config: NovaCronConfig, consensus: ConsensusMember | None
) -> _Components:
    system, dwcp = config.system, config.dwcp
    parts = _Components()
    if consensus is not None:
        parts.member = rt.app = start_member(
            rt,
            consensus.protocol,
            consensus.members,
            KVStore(),
            config=dwcp.consensus,
            keyring=consensus.keyring,
        )
        log.info("consensus: %s member of %s", consensus.protocol, ", ".join(consensus.members))
    else:
        parts.heartbeat = HeartbeatService(rt, interval=dwcp.consensus.heartbeat_interval)
        rt.spawn(_watch_peers(rt, parts.heartbeat))
    if dwcp.enable_v3_state_sync:
        replicas = consensus.members if consensus is not None else (system.node_id, *rt.peers)
        parts.detector = ModeDetector.from_config(rt, dwcp)
        parts.state_sync = StateSync(rt, peers=replicas, detector=parts.detector)
        log.info(
            "state sync: replica of %s (%d keys stored)", ", ".join(replicas), len(parts.state_sync.store)
        )
    if config.hosting.enable:
        parts.hosting = VMHost(
            rt, BufferHypervisor(), capacity_mib=config.hosting.memory_mib, inventory=parts.state_sync
        )
        log.info("hosting VMs: %d MiB of guest memory", config.hosting.memory_mib)
    return parts


async def _shutdown(rt: AsyncioRuntime, parts: _Components, endpoints: NodeEndpoints, timeout: float) -> bool:
    """Stop the node within ``timeout`` seconds; ``False`` if it had to be forced.

    ``/healthz`` turns 503 first and answers until the runtime is closed, so that whoever
    watches it sees the node going before it is gone.
    """
    endpoints.begin_shutdown()
    parts.stop()
    try:
        async with asyncio.timeout(timeout):
            if parts.detector is not None:
                await parts.detector.close()  # a probe in progress finishes before the runtime closes
            await rt.close()
            await endpoints.close()
    except TimeoutError:
        log.error("node %s did not stop within %gs; forcing", rt.node_id, timeout)
        await rt.crash()
        await endpoints.close()
        return False
    log.info("node %s stopped", rt.node_id)
    return True


async def _watch_peers(rt: AsyncioRuntime, heartbeat: HeartbeatService) -> None:
    """Log when a peer starts or stops answering heartbeats (what an operator wants to see)."""
    up: set[str] = set()
    while True:
        await rt.sleep(heartbeat.interval)
        suspected = set(heartbeat.suspected())
        for peer, stats in heartbeat.peers.items():
            if peer not in suspected and stats.acks and peer not in up:
                up.add(peer)
                rtt = stats.last_rtt or 0.0
                log.info("peer %s is up (rtt %.2f ms)", peer, rtt * 1000)
            elif peer in suspected and peer in up:
                up.discard(peer)
                log.warning("peer %s stopped answering heartbeats", peer)
