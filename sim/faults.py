"""Fault injection: scheduled faults and a seeded nemesis.

Every fault can be applied now or at a simulated time (``at=``), and most
heal by themselves after ``duration=``; each call returns a
:class:`FaultHandle` whose :meth:`~FaultHandle.heal` ends it early. All
faults are recorded in the trace, so a replayed seed shows the same fault
schedule.

Faults available (ARCHITECTURE.md, "Faults"):

* ``partition(a, b)`` symmetric or ``one_way=True``; ``isolate(node)``
* ``degrade(...)``: a link's bandwidth, latency or loss
* ``replay_bandwidth(links, times, mbps)``: a link's capacity following a measured trace
* ``burst(loss=..., duplicate=..., reorder=...)`` between node sets
* ``crash(node)`` / ``restart(node)`` (unsynced storage is lost)
* ``skew(node, offset=..., drift=...)``: clock skew
* ``slow_disk(node, fsync_latency)``

:class:`Nemesis` draws a random schedule of these from its own seeded
generator (for fault-injection campaigns).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .network.routes import PairFault
from .network.topology import Link
from .seeds import derive_seed

if TYPE_CHECKING:
    from .simulation import Simulation

#: the lowest capacity a replayed bandwidth trace gives a link (Mbit/s; see ``replay_bandwidth``)
MIN_REPLAY_MBPS = 0.01


@dataclass(eq=False)
class FaultHandle:
    """A scheduled or active fault. ``heal()`` ends it (idempotent)."""

    description: str
    _heal: Callable[[], None] | None = None
    active: bool = False
    healed: bool = False
    _pending: Any = field(default=None, repr=False)

    def heal(self) -> None:
        if self.healed:
            return
        self.healed = True
        if self._pending is not None:  # not applied yet: never apply it
            self._pending.cancel()
        if self.active and self._heal is not None:
            self._heal()
        self.active = False


def _node_set(nodes: Iterable[str] | str | None) -> frozenset[str] | None:
    if nodes is None:
        return None
    if isinstance(nodes, str):
        return frozenset([nodes])
    return frozenset(nodes)


class FaultInjector:
    """``sim.faults``: the fault API of one simulation."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.log: list[tuple[float, str]] = []

    # -- scheduling ---------------------------------------------------------
    def _schedule(
        self,
        description: str,
        apply: Callable[[], Callable[[], None] | None],
        at: float | None,
        duration: float | None,
    ) -> FaultHandle:
        handle = FaultHandle(description)
        sim = self.sim

        def do_apply() -> None:
            handle._pending = None
            if handle.healed:
                return
            self._record("apply", description)
            undo = apply()
            handle.active = undo is not None
            if undo is not None:

                def do_heal() -> None:
                    self._record("heal", description)
                    undo()

                handle._heal = do_heal
                if duration is not None:
                    sim.call_at(sim.now + duration, handle.heal)

        if at is None or at <= sim.now:
            do_apply()
        else:
            handle._pending = sim.call_at(at, do_apply)
        return handle

    def _record(self, what: str, description: str) -> None:
        self.log.append((self.sim.now, f"{what} {description}"))
        self.sim.tracer.record((self.sim.now, "fault", what, description))

    def _check_nodes(self, nodes: frozenset[str] | None) -> None:
        if nodes is None:
            return
        unknown = sorted(nodes - set(self.sim.topology.nodes))
        if unknown:
            raise KeyError(f"unknown node(s) {unknown}")

    def _pair_fault(self, fault: PairFault, description: str, at, duration) -> FaultHandle:
        self._check_nodes(fault.src)
        self._check_nodes(fault.dst)
        net = self.sim.network

        def apply() -> Callable[[], None]:
            net.add_fault(fault)
            return lambda: net.remove_fault(fault)

        return self._schedule(description, apply, at, duration)

    # -- network faults -------------------------------------------------------
    def partition(
        self,
        side_a: Iterable[str] | str,
        side_b: Iterable[str] | str | None = None,
        *,
        one_way: bool = False,
        at: float | None = None,
        duration: float | None = None,
    ) -> FaultHandle:
        """Cut messages and flows between two sides (``side_b`` default: everyone else).

        ``one_way=True`` cuts only ``side_a -> side_b``.
        """
        a = _node_set(side_a)
        b = _node_set(side_b) if side_b is not None else frozenset(self.sim.topology.nodes) - a
        arrow = "-/->" if one_way else "<-/->"
        fault = PairFault("partition", a, b, symmetric=not one_way, blocked=True)
        return self._pair_fault(fault, f"partition {sorted(a)} {arrow} {sorted(b)}", at, duration)

    def isolate(self, node: str, *, at: float | None = None, duration: float | None = None) -> FaultHandle:
        return self.partition([node], None, at=at, duration=duration)

    def burst(
        self,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        reorder_delay: float = 0.01,
        src: Iterable[str] | str | None = None,
        dst: Iterable[str] | str | None = None,
        at: float | None = None,
        duration: float | None = None,
    ) -> FaultHandle:
        """Extra message loss, duplication and/or reordering (probabilities in [0, 1])."""
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0 <= p <= 1:
                raise ValueError(f"burst {name} must be a probability in [0, 1], got {p}")
        fault = PairFault(
            "burst", _node_set(src), _node_set(dst), True, False, loss, duplicate, reorder, reorder_delay
        )
        desc = f"burst loss={loss:g} dup={duplicate:g} reorder={reorder:g}"
        return self._pair_fault(fault, desc, at, duration)

    def degrade(
        self,
        links: Iterable[Link] | Link,
        *,
        bandwidth_factor: float = 1.0,
        extra_latency: float = 0.0,
        extra_loss: float = 0.0,
        at: float | None = None,
        duration: float | None = None,
    ) -> FaultHandle:
        """Slow, lengthen or make lossy some links (see :meth:`links_between_sites`)."""
        targets = [links] if isinstance(links, Link) else list(links)
        if not 0 < bandwidth_factor:
            raise ValueError("bandwidth_factor must be > 0")
        if extra_latency < 0 or not 0 <= extra_loss < 1:
            raise ValueError("extra_latency must be >= 0 and extra_loss in [0, 1)")
        net = self.sim.network

        def apply() -> Callable[[], None]:
            for link in targets:
                link.bandwidth_factor *= bandwidth_factor
                link.extra_latency += extra_latency
                link.extra_loss += extra_loss
            net.conditions_changed()

            def undo() -> None:
                for link in targets:
                    link.bandwidth_factor /= bandwidth_factor
                    link.extra_latency -= extra_latency
                    link.extra_loss -= extra_loss
                net.conditions_changed()

            return undo

        names = ",".join(link.name for link in targets)
        desc = f"degrade [{names}] bw*{bandwidth_factor:g} +{extra_latency:g}s loss+{extra_loss:g}"
        return self._schedule(desc, apply, at, duration)

    def replay_bandwidth(
        self,
        links: Iterable[Link] | Link,
        times: Sequence[float],
        mbps: Sequence[float],
        *,
        at: float | None = None,
    ) -> FaultHandle:
        """Make the links' capacity follow a measured bandwidth trace (e.g. a PBA trace file).

        From ``at`` (default: now) each link carries ``mbps[i]`` Mbit/s from ``times[i] - times[0]``
        seconds on, the last value until healed; healing restores the link's own bandwidth. The
        trace scales ``bandwidth_factor``, so a ``degrade`` on the same links still multiplies on
        top. Samples below :data:`MIN_REPLAY_MBPS` are raised to it: a link of zero capacity would
        stall every flow forever, where a real one still trickles (and the trace's 0 is a bin with
        no delivery, not a cut cable). One record in the trace and the fault log, not one per sample.
        """
        targets = [links] if isinstance(links, Link) else list(links)
        when = np.asarray(times, dtype=float)
        rate = np.maximum(np.asarray(mbps, dtype=float), MIN_REPLAY_MBPS) * 1e6
        if when.ndim != 1 or when.shape != rate.shape or len(when) == 0:
            raise ValueError(
                f"need equally long, non-empty times and mbps, got {when.shape} and {rate.shape}"
            )
        if not np.all(np.isfinite(when)) or not np.all(np.isfinite(rate)) or np.any(np.diff(when) <= 0):
            raise ValueError("trace times must be finite and strictly increasing, rates finite")
        net, sim = self.sim.network, self.sim
        scale = {link.name: 1.0 for link in targets}  # the trace's current factor on each link
        pending: list[Any] = []

        def set_rate(bps: float) -> None:
            for link in targets:
                new = bps / link.bandwidth
                link.bandwidth_factor *= new / scale[link.name]
                scale[link.name] = new
            net.conditions_changed()

        def apply() -> Callable[[], None]:
            start = sim.now
            set_rate(float(rate[0]))
            pending.extend(
                sim.call_at(start + t - when[0], set_rate, float(r))
                for t, r in zip(when[1:], rate[1:], strict=True)
            )

            def undo() -> None:
                for call in pending:
                    call.cancel()
                for link in targets:
                    link.bandwidth_factor /= scale[link.name]
                    scale[link.name] = 1.0
                net.conditions_changed()

            return undo

        names = ",".join(link.name for link in targets)
        span = float(when[-1] - when[0])
        desc = f"replay-bandwidth [{names}] {len(when)} samples over {span:g}s"
        return self._schedule(desc, apply, at, None)

    def links_between_sites(self, a: str, b: str, *, both_ways: bool = True) -> list[Link]:
        links = [self.sim.topology.site_links[(a, b)]]
        if both_ways:
            links.append(self.sim.topology.site_links[(b, a)])
        return links

    def kill_streams(
        self, src: str | None = None, dst: str | None = None, *, count: int = 1, at: float | None = None
    ) -> FaultHandle:
        """Reset ``count`` open streams from ``src`` to ``dst`` (oldest first), as a
        connection reset would: an in-flight send raises, the stream stays failed."""
        bulk = self.sim.network.bulk

        def apply() -> None:
            for stream in bulk.streams_between(src, dst)[:count]:
                bulk.fail(stream, "connection reset (injected)")
            return None

        return self._schedule(f"kill-streams {src}->{dst} x{count}", apply, at, None)

    # -- node faults ----------------------------------------------------------
    def crash(self, node: str, *, at: float | None = None, restart_after: float | None = None) -> FaultHandle:
        """Crash ``node`` (at ``at``); with ``restart_after`` it comes back then."""
        self._check_nodes(frozenset([node]))

        def apply() -> Callable[[], None]:
            self.sim.crash(node)
            return lambda: self.sim.restart(node)

        return self._schedule(f"crash {node}", apply, at, restart_after)

    def restart(self, node: str, *, at: float | None = None) -> FaultHandle:
        self._check_nodes(frozenset([node]))

        def apply() -> None:
            self.sim.restart(node)  # a restart is not undone: nothing to heal

        return self._schedule(f"restart {node}", apply, at, None)

    def skew(
        self,
        node: str,
        *,
        jump: float = 0.0,
        drift: float | None = None,
        at: float | None = None,
    ) -> FaultHandle:
        """Jump ``node``'s clock forward and/or change its drift rate (e.g. 1e-4 = 100 ppm)."""
        self._check_nodes(frozenset([node]))
        clock = self.sim.clock(node)

        def apply() -> None:
            if drift is not None:
                clock.set_drift(self.sim.now, drift)
            if jump:
                clock.jump(jump)
            return None

        return self._schedule(f"skew {node} jump={jump:g} drift={drift}", apply, at, None)

    def slow_disk(
        self, node: str, fsync_latency: float, *, at: float | None = None, duration: float | None = None
    ) -> FaultHandle:
        self._check_nodes(frozenset([node]))
        storage = self.sim.storage(node)

        def apply() -> Callable[[], None]:
            before = storage.fsync_latency
            storage.fsync_latency = fsync_latency

            def undo() -> None:
                storage.fsync_latency = before

            return undo

        return self._schedule(f"slow-disk {node} fsync={fsync_latency:g}s", apply, at, duration)


@dataclass
class Nemesis:
    """A seeded random fault schedule: the adversary of a fault-injection campaign.

    Between ``start`` and ``stop`` it waits an exponential time (mean
    ``mean_interval``), picks one of ``kinds`` and applies it for a random
    duration up to ``max_duration``; at ``stop`` everything heals, so a
    campaign can check that progress resumes.
    """

    kinds: tuple[str, ...] = ("partition", "one_way", "crash", "loss", "duplicate", "reorder", "skew")
    mean_interval: float = 2.0
    max_duration: float = 3.0
    start: float = 0.0
    stop: float = 30.0
    #: the nodes it may crash, skew or put on a partition's first side (default: every node);
    #: a campaign leaves its clients out so that their histories stay whole
    targets: tuple[str, ...] | None = None
    handles: list[FaultHandle] = field(default_factory=list)

    KNOWN = ("partition", "one_way", "crash", "loss", "duplicate", "reorder", "skew", "degrade")

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in self.KNOWN]
        if unknown:
            raise ValueError(f"unknown nemesis fault kinds {unknown}; known: {', '.join(self.KNOWN)}")

    def schedule(self, sim: Simulation) -> list[FaultHandle]:
        """Draw the whole schedule now (from the simulation's seed) and register it."""
        rng = random.Random(derive_seed(sim.seed, "nemesis"))
        nodes = sorted(self.targets if self.targets is not None else sim.topology.nodes)
        t = self.start
        while True:
            t += rng.expovariate(1.0 / self.mean_interval)
            if t >= self.stop:
                break
            duration = min(rng.uniform(0.1, self.max_duration), self.stop - t)
            kind = rng.choice(self.kinds)
            self.handles.append(self._one(sim, rng, kind, nodes, t, duration))
        sim.call_at(self.stop, self.heal_all)
        return self.handles

    def heal_all(self) -> None:
        for handle in self.handles:
            handle.heal()

    @staticmethod
    def _one(sim: Simulation, rng: random.Random, kind: str, nodes: list[str], t: float, d: float):
        f = sim.faults
        if kind in ("partition", "one_way"):
            k = rng.randint(1, max(1, len(nodes) // 2))
            side = rng.sample(nodes, k)
            rest = [n for n in nodes if n not in side]  # nodes outside the targets stay connected
            return f.partition(side, rest, one_way=kind == "one_way", at=t, duration=d)
        if kind == "crash":
            return f.crash(rng.choice(nodes), at=t, restart_after=d)
        if kind == "loss":
            return f.burst(loss=rng.uniform(0.05, 0.5), at=t, duration=d)
        if kind == "duplicate":
            return f.burst(duplicate=rng.uniform(0.05, 0.5), at=t, duration=d)
        if kind == "reorder":
            return f.burst(reorder=rng.uniform(0.1, 0.5), reorder_delay=0.05, at=t, duration=d)
        if kind == "skew":
            return f.skew(rng.choice(nodes), jump=rng.uniform(0, 0.5), drift=rng.uniform(-1e-3, 1e-3), at=t)
        links = [ln for ln in sim.topology.all_links()]
        return f.degrade(rng.choice(links), bandwidth_factor=rng.uniform(0.05, 0.5), at=t, duration=d)
