"""Several real nodes in one event loop, on loopback: for tests, notebooks and demos.

Each node is a full :class:`~.runtime.AsyncioRuntime` with its own listening
port, TCP connections and SQLite file; only the event loop and the
:class:`~.directory.PeerDirectory` are shared. Crashes are real enough to test
recovery: :meth:`LocalCluster.crash` closes the node's connections (messages,
streams and transfers, both directions) and drops its unsynced writes, and
:meth:`LocalCluster.restart` brings the node back on the same address and
data directory with a fresh runtime, re-running its app.

    async with LocalCluster(tmp_path) as cluster:
        a = await cluster.add_node("a", app)
        b = await cluster.add_node("b", app)
        await cluster.crash("b")
        await cluster.restart("b")
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from novacron.runtime import App

from .directory import PeerDirectory
from .options import RuntimeOptions
from .runtime import AsyncioRuntime
from .storage import SQLiteStorage
from .tls import TestPKI, TLSConfig

log = logging.getLogger(__name__)


@dataclass
class _Node:
    node_id: str
    app: App | None
    region: str
    zone: str
    port: int
    incarnation: int
    runtime: AsyncioRuntime


class LocalCluster:
    """In-process nodes on ``host``; see the module docstring.

    ``tls``: ``False`` (plain TCP), ``True`` (a throwaway CA in
    ``base_dir/pki`` issuing each node its own certificate), one
    :class:`TLSConfig` shared by all nodes (identity checks are then off: one
    certificate cannot name every node), or a mapping of node id to
    :class:`TLSConfig`. ``seed`` derives every node's random seed (different
    per node and per incarnation, the same from run to run).
    """

    def __init__(
        self,
        base_dir: Path | str,
        *,
        host: str = "127.0.0.1",
        tls: bool | TLSConfig | Mapping[str, TLSConfig] = False,
        seed: int = 0,
        options: RuntimeOptions | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.seed = seed
        self.options = options
        self.directory = PeerDirectory()
        self._tls = tls
        self._pki: TestPKI | None = None
        self._nodes: dict[str, _Node] = {}
        self._epoch: float | None = None
        self._closed = False

    async def __aenter__(self) -> LocalCluster:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._nodes))

    def runtime(self, node_id: str) -> AsyncioRuntime:
        """The node's current runtime (a new object after each restart)."""
        return self._node(node_id).runtime

    def data_dir(self, node_id: str) -> Path:
        return self.base_dir / "nodes" / node_id

    async def add_node(
        self, node_id: str, app: App | None = None, *, region: str = "", zone: str = ""
    ) -> AsyncioRuntime:
        """Start a node on an ephemeral port; every node learns its address.

        ``app(rt)`` runs once the node listens (a coroutine it returns is
        spawned on the node). Apps that read ``rt.peers`` at start-up only see
        nodes added before; :meth:`add_nodes` starts several nodes before
        running any app.
        """
        (rt,) = await self.add_nodes([node_id], app, region=region, zone=zone)
        return rt

    async def add_nodes(
        self, node_ids: Iterable[str], app: App | None = None, *, region: str = "", zone: str = ""
    ) -> list[AsyncioRuntime]:
        """Start several nodes, then run ``app`` on each: every app sees every peer."""
        if self._closed:
            raise RuntimeError("the cluster is closed")
        ids = list(node_ids)
        for node_id in ids:
            if node_id in self._nodes or ids.count(node_id) > 1:
                raise ValueError(f"node {node_id!r} already exists")
        if self._epoch is None:
            self._epoch = time.monotonic()  # the runtimes' clock (see .clock)
        nodes = []
        for node_id in ids:
            rt = await self._start(node_id, region, zone, port=0, incarnation=0)
            node = _Node(node_id, app, region, zone, rt.address[1], 0, rt)
            self._nodes[node_id] = node
            nodes.append(node)
        for node in nodes:
            _run_app(node.app, node.runtime)
        return [node.runtime for node in nodes]

    async def crash(self, node_id: str) -> None:
        """Kill the node: tasks and timers cancelled, sockets reset, unsynced writes lost.

        Its address stays in the directory, so peers keep trying to reach it.
        A no-op on a node that is already down.
        """
        await self._node(node_id).runtime.crash()

    async def stop(self, node_id: str) -> None:
        """Shut the node down cleanly (flush, commit); :meth:`restart` brings it back."""
        await self._node(node_id).runtime.close()

    async def restart(self, node_id: str) -> AsyncioRuntime:
        """Bring the node back on the same port and data directory, with a fresh
        runtime and its app re-run. A running node is crashed first."""
        node = self._node(node_id)
        await node.runtime.crash()
        node.incarnation += 1
        node.runtime = await self._start(node.node_id, node.region, node.zone, node.port, node.incarnation)
        _run_app(node.app, node.runtime)
        return node.runtime

    async def close(self) -> None:
        """Stop every node (gracefully); every listener and connection the cluster's
        nodes started (message, stream, transfer) is closed."""
        self._closed = True
        await asyncio.gather(*(node.runtime.close() for node in self._nodes.values()))

    def _node(self, node_id: str) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id!r} in this cluster") from None

    async def _start(
        self,
        node_id: str,
        region: str,
        zone: str,
        port: int,
        incarnation: int,
    ) -> AsyncioRuntime:
        storage = SQLiteStorage(self.data_dir(node_id) / "storage.sqlite3")
        rt = AsyncioRuntime(
            node_id,
            directory=self.directory,
            host=self.host,
            port=port,
            region=region,
            zone=zone,
            storage=storage,
            seed=self._seed_for(node_id, incarnation),
            tls=self._tls_for(node_id),
            options=self.options,
            epoch=self._epoch,
        )
        try:
            await rt.start()
        except BaseException:
            storage.abandon()
            raise
        return rt

    def _seed_for(self, node_id: str, incarnation: int) -> int:
        digest = hashlib.sha256(f"{self.seed}/{node_id}/{incarnation}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def _tls_for(self, node_id: str) -> TLSConfig | None:
        tls = self._tls
        if tls is False:
            return None
        if tls is True:
            if self._pki is None:
                self._pki = TestPKI(self.base_dir / "pki")
            cert = self._pki.directory / f"{node_id}.pem"
            if cert.exists():  # a restart keeps its certificate
                return TLSConfig(cert, self._pki.directory / f"{node_id}.key", self._pki.ca_path)
            return self._pki.issue(node_id)
        if isinstance(tls, TLSConfig):
            return TLSConfig(tls.cert, tls.key, tls.ca, check_identity=False)
        try:
            return tls[node_id]
        except KeyError:
            raise KeyError(f"no TLSConfig for node {node_id!r} in the cluster's tls mapping") from None


def _run_app(app: App | None, rt: AsyncioRuntime) -> None:
    if app is None:
        return
    result = app(rt)
    if inspect.iscoroutine(result):
        rt.spawn(result)
