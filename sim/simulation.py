"""A simulation: one SimPy environment, a topology, its nodes and a seed.

Typical use::

    sim = Simulation(topologies.datacenter(8), seed=7)
    sim.start(lambda rt: HeartbeatService(rt, interval=0.1))
    sim.faults.partition(["n0", "n1"], ["n2"], at=5.0, duration=2.0)
    sim.run(until=30.0)
    print(sim.trace_hash())

Every random choice (network jitter and loss, each node's ``rt.random``,
the nemesis) comes from a generator derived from ``seed`` and a fixed
label, so runs replay exactly and adding a node does not perturb the
others' streams.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import simpy

from novacron.runtime import App, NodeInfo

from .cpu import Cpu
from .faults import FaultInjector
from .kernel import Call
from .network.network import SimNetwork
from .network.topology import Topology
from .runtime import NodeClock, SimRuntime
from .seeds import derive_seed
from .storage import SimStorage
from .trace import Tracer

log = logging.getLogger(__name__)


class Simulation:
    """Owns the environment, the nodes (with their apps) and the network."""

    def __init__(
        self,
        topology: Topology,
        *,
        seed: int = 0,
        trace: bool = True,
        keep_trace: bool = False,
        stream_timeout: float = 60.0,
    ) -> None:
        if not topology.nodes:
            raise ValueError("the topology has no nodes")
        self.env = simpy.Environment()
        self.topology = topology
        self.seed = seed
        self.tracer = Tracer(enabled=trace, keep=keep_trace)
        self._runtimes: dict[str, SimRuntime] = {}  # filled below; updated in place on restarts
        #: per node with a core count, the Cpu of each incarnation so far (novacron.sim.cpu)
        self.cpus: dict[str, list[Cpu]] = {}
        self.network = SimNetwork(self, topology, random.Random(derive_seed(seed, "network")), stream_timeout)
        self.faults = FaultInjector(self)
        node_ids = sorted(topology.nodes)
        self._peers_of = {n: tuple(p for p in node_ids if p != n) for n in node_ids}
        self._infos = {n: self._make_info(n) for n in node_ids}
        self._storage = {n: SimStorage(self.env) for n in node_ids}
        self._clocks = {n: NodeClock() for n in node_ids}
        self._incarnations = dict.fromkeys(node_ids, 0)
        self._apps: dict[str, App | None] = dict.fromkeys(node_ids)
        self._runtimes.update({n: self._new_runtime(n) for n in node_ids})

    # -- nodes ----------------------------------------------------------------
    @property
    def node_ids(self) -> list[str]:
        return list(self._runtimes)

    def node_info(self, node_id: str) -> NodeInfo:
        try:
            return self._infos[node_id]
        except KeyError:
            raise KeyError(f"unknown node {node_id!r}") from None

    def runtime(self, node_id: str) -> SimRuntime:
        """The node's current incarnation (a new object after each restart)."""
        try:
            return self._runtimes[node_id]
        except KeyError:
            raise KeyError(f"unknown node {node_id!r}") from None

    def storage(self, node_id: str) -> SimStorage:
        return self._storage[node_id]

    def clock(self, node_id: str) -> NodeClock:
        return self._clocks[node_id]

    def start(self, app: App | Mapping[str, App], nodes: list[str] | None = None) -> None:
        """Run ``app(runtime)`` on ``nodes`` (default: all) now and after every restart.

        ``app`` may also map node ids to their own apps.
        """
        plan = dict(app) if isinstance(app, Mapping) else dict.fromkeys(nodes or self.node_ids, app)
        for node_id, node_app in plan.items():
            rt = self.runtime(node_id)
            self._apps[node_id] = node_app
            if rt.alive:
                rt.app = node_app(rt)

    def crash(self, node_id: str) -> None:
        """Stop the node at once: volatile state, timers and unsynced storage are lost."""
        rt = self.runtime(node_id)
        if not rt.alive:
            return
        rt.alive = False
        self._storage[node_id].crash()
        self.network.node_crashed(node_id)
        self.tracer.record((self.env.now, "crash", node_id))
        log.debug("t=%.6f crash %s", self.env.now, node_id)

    def restart(self, node_id: str) -> SimRuntime:
        """A new incarnation on the same storage; the node's app runs again."""
        if self.runtime(node_id).alive:
            self.crash(node_id)
        rt = self._runtimes[node_id] = self._new_runtime(node_id)
        self.tracer.record((self.env.now, "restart", node_id, rt.incarnation))
        app = self._apps[node_id]
        if app is not None:
            rt.app = app(rt)
        return rt

    def _new_runtime(self, node_id: str) -> SimRuntime:
        self._incarnations[node_id] += 1
        n = self._incarnations[node_id]
        rng = random.Random(derive_seed(self.seed, f"node:{node_id}:{n}"))
        return SimRuntime(self, self._infos[node_id], self._storage[node_id], self._clocks[node_id], rng, n)

    def _make_info(self, node_id: str) -> NodeInfo:
        spec = self.topology.nodes[node_id]
        site = self.topology.sites[spec.site]
        return NodeInfo(node_id, site.region, site.zone, {"site": site.name, **spec.labels})

    # -- time -----------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.env.now

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> Call:
        """Run ``fn(*args)`` at simulated time ``when`` (harness-level: faults, probes)."""
        return Call(self.env, max(0.0, when - self.env.now), fn, args)

    def run(self, until: float | None = None, *, progress: bool = False) -> None:
        """Advance virtual time to ``until`` (or until nothing is scheduled).

        ``progress=True`` shows a progress bar in simulated seconds.
        """
        if until is not None and until < self.env.now:
            raise ValueError(f"cannot run until {until}: the simulation is already at {self.env.now}")
        if not progress or until is None:
            self.env.run(until=until)
            return
        import sys

        from tqdm.auto import tqdm

        start = self.env.now
        steps = 100
        # disable=None: tqdm turns itself off when stderr is not a terminal.
        bar = tqdm(
            total=round(until - start, 3),
            unit="sim-s",
            desc="simulating",
            disable=None,
            mininterval=0.5,
            file=sys.stderr,
        )
        with bar:
            for i in range(1, steps + 1):
                target = start + (until - start) * i / steps
                self.env.run(until=target)
                bar.n = round(target - start, 3)
                bar.refresh()

    def run_until_complete(
        self,
        node_id: str,
        fn: Callable[[SimRuntime], Coroutine[Any, Any, Any]],
        *,
        timeout: float = 3600.0,
    ) -> Any:
        """Run ``fn(runtime)`` as a task on ``node_id`` and return its result.

        Virtual time advances as needed; raises :class:`TimeoutError` if the
        coroutine has not finished after ``timeout`` simulated seconds.
        """
        task = self.runtime(node_id).spawn(fn(self.runtime(node_id)))
        deadline = self.env.now + timeout
        done_event = self.env.event()

        def finished(_: Any) -> None:
            if not done_event.triggered:
                done_event.succeed()

        task.add_done_callback(finished)
        stop_timer = self.call_at(deadline, finished, None)
        self.env.run(until=done_event)
        stop_timer.cancel()
        if not task.done():
            raise TimeoutError(f"coroutine on {node_id} did not finish within {timeout:g} simulated s")
        return task.result()

    # -- results --------------------------------------------------------------
    def trace_hash(self) -> str:
        """Hash of the event trace so far: equal seeds must give equal hashes."""
        return self.tracer.hexdigest()

    def __repr__(self) -> str:
        return f"<Simulation seed={self.seed} t={self.env.now:.6f} {self.topology.summary()}>"
