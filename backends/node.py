"""One real node in this process: what ``novacron node`` runs.

The command line (:mod:`novacron.cli.node_cmd`) parses and validates; this
module owns the asyncio side: the runtime, its storage, the heartbeat
service, signal handling and a bounded shutdown.
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
from novacron.mode import ModeDetector
from novacron.monitoring import HeartbeatService
from novacron.sync import StateSync

from .directory import PeerDirectory
from .options import RuntimeOptions
from .rdma import select_transport
from .runtime import AsyncioRuntime
from .storage import SQLiteStorage
from .tls import TLSConfig

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
    data_dir = Path(system.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        storage = SQLiteStorage(data_dir / f"{system.node_id}.sqlite3")
    except OSError as exc:
        log.error("cannot open storage in %s: %s", data_dir, exc)
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
    member = None
    heartbeat = None
    if consensus is not None:
        member = rt.app = start_member(
            rt,
            consensus.protocol,
            consensus.members,
            KVStore(),
            config=dwcp.consensus,
            keyring=consensus.keyring,
        )
        log.info("consensus: %s member of %s", consensus.protocol, ", ".join(consensus.members))
    else:
        heartbeat = HeartbeatService(rt, interval=dwcp.consensus.heartbeat_interval)
        rt.spawn(_watch_peers(rt, heartbeat))
    state_sync = detector = None
    if dwcp.enable_v3_state_sync:
        replicas = consensus.members if consensus is not None else (system.node_id, *rt.peers)
        detector = ModeDetector.from_config(rt, dwcp)
        state_sync = StateSync(rt, peers=replicas, detector=detector)
        log.info("state sync: replica of %s (%d keys stored)", ", ".join(replicas), len(state_sync.store))
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
    if heartbeat is not None:
        heartbeat.stop()
    if member is not None:
        member.stop()
    if state_sync is not None:
        state_sync.stop()
    try:
        async with asyncio.timeout(system.shutdown_timeout):
            if detector is not None:
                await detector.close()  # a probe in progress finishes before the runtime closes
            await rt.close()
    except TimeoutError:
        log.error("node %s did not stop within %gs; forcing", system.node_id, system.shutdown_timeout)
        await rt.crash()
        return 1
    log.info("node %s stopped", system.node_id)
    return 0


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
