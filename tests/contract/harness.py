"""One driver interface over both runtimes, so each contract test is written once.

A :class:`Harness` starts a few nodes running an app, runs a coroutine on
one of them until it finishes (virtual time in the simulator, wall-clock
time on the asyncio backend), and crashes and restarts nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from novacron.runtime import App, Runtime
from novacron.sim import Simulation, Topology

RunFn = Callable[[Runtime], Coroutine[Any, Any, Any]]


class SimHarness:
    kind = "sim"

    def __init__(self, tmp_path: Path, seed: int = 0) -> None:
        self.seed = seed
        self.sim: Simulation | None = None

    def start(self, node_ids: list[str], app: App | None = None) -> None:
        topo = Topology("contract")
        topo.add_site("dc", "local")
        for node_id in node_ids:
            topo.add_node(node_id, "dc")
        self.sim = Simulation(topo, seed=self.seed)
        if app is not None:
            self.sim.start(app)

    def runtime(self, node_id: str) -> Runtime:
        return self.sim.runtime(node_id)

    def run(self, node_id: str, fn: RunFn, timeout: float = 30.0) -> Any:
        return self.sim.run_until_complete(node_id, fn, timeout=timeout)

    def crash(self, node_id: str) -> None:
        self.sim.crash(node_id)

    def restart(self, node_id: str) -> None:
        self.sim.restart(node_id)

    def close(self) -> None:
        pass


class AsyncioHarness:
    """The real backend on asyncio's own event loop, or on uvloop's (``uvloop=True``): nodes run
    uvloop by default, whose clock and timers work in milliseconds."""

    kind = "asyncio"

    def __init__(self, tmp_path: Path, seed: int = 0, *, uvloop: bool = False) -> None:
        from novacron.backends import LocalCluster, new_event_loop

        self.kind = "uvloop" if uvloop else "asyncio"
        self.loop = new_event_loop(prefer_uvloop=uvloop)
        self.cluster = LocalCluster(tmp_path / "cluster", seed=seed)
        self._app: App | None = None

    def start(self, node_ids: list[str], app: App | None = None) -> None:
        async def add_all() -> None:
            for node_id in node_ids:
                await self.cluster.add_node(node_id)
            if app is not None:  # start apps once every node knows every peer
                for node_id in node_ids:
                    self.cluster.runtime(node_id).app = app(self.cluster.runtime(node_id))

        self._app = app
        self.loop.run_until_complete(add_all())

    def runtime(self, node_id: str) -> Runtime:
        return self.cluster.runtime(node_id)

    def run(self, node_id: str, fn: RunFn, timeout: float = 30.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(fn(self.runtime(node_id)), timeout))

    def crash(self, node_id: str) -> None:
        self.loop.run_until_complete(self.cluster.crash(node_id))

    def restart(self, node_id: str) -> None:
        self.loop.run_until_complete(self.cluster.restart(node_id))
        if self._app is not None:
            rt = self.cluster.runtime(node_id)
            rt.app = self._app(rt)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.cluster.close())
        finally:
            self.loop.close()
