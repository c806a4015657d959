"""Per node-pair route state: what the message hot path reads.

A :class:`Route` folds the links of a path and every active fault that
touches the pair into a few numbers, so delivering a message is arithmetic
on one cached object. Routes are rebuilt lazily whenever a fault or a link
changes (the network bumps a version and clears the cache).
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class PairFault:
    """A fault that applies to messages between some node pairs.

    ``src``/``dst`` are node-id sets (``None`` = any node). ``blocked``
    makes it a partition; the probabilities make it a loss, duplication or
    reordering burst. ``symmetric`` also applies it dst -> src.
    """

    kind: str
    src: frozenset[str] | None
    dst: frozenset[str] | None
    symmetric: bool = True
    blocked: bool = False
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.0

    def applies(self, a: str, b: str) -> bool:
        if (self.src is None or a in self.src) and (self.dst is None or b in self.dst):
            return True
        return self.symmetric and (self.src is None or b in self.src) and (self.dst is None or a in self.dst)


class Reservoir:
    """A uniform random sample (``values``) of at most ``capacity`` values, and how many were offered.

    Li's Algorithm L (1994) with its own seeded generator: once the
    reservoir is full it draws how many values to *skip* before the next
    replacement, so the hot path costs a counter comparison per value rather
    than a random draw. Reports stay unbiased over long runs (a "first N"
    cap would only describe the start) and sampling never perturbs the
    network's random stream.

    Replacements are not rare enough to be free: ``capacity * ln(n / capacity)``
    of them in ``n`` values, one per three deliveries in a run three times the
    capacity. So their positions and slots are drawn ``BATCH`` at a time with
    numpy (:meth:`_draw`), and a replacement is two list reads and a store into an array.
    Slotted, not a list subclass: the delivery hot path reads and bumps
    ``seen`` on every message, and slot access is the interpreter's cheapest.
    """

    BATCH = 4096

    __slots__ = ("capacity", "seen", "next", "values", "_rng", "_log_w", "_at", "_slots", "_i")

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.seen = 0
        self.values = array("d")  # unboxed: a replacement frees no float object, and 8 bytes a sample
        self._rng = np.random.default_rng(rng.getrandbits(64))
        # W, the largest of the capacity keys so far (Algorithm L), kept as its log
        self._log_w = float(np.log(self._rng.random())) / capacity
        self._draw(after=capacity)

    def add(self, value: float) -> None:
        """Offer one value (what the delivery hot path does inline)."""
        self.seen += 1
        if len(self.values) < self.capacity:
            self.values.append(value)
        elif self.seen == self.next:
            self.offer(value)

    def offer(self, value: float) -> None:
        """Called (by the hot path) when ``seen`` reaches ``next``: ``value`` replaces a random one."""
        i = self._i
        self.values[self._slots[i]] = value
        i += 1
        if i == len(self._at):
            self._draw(after=self.next)
        else:
            self._i = i
            self.next = self._at[i]

    def _draw(self, after: int) -> None:
        """The next ``BATCH`` replacements of Algorithm L: at which ``seen`` counts, into which slots.

        Replacement j skips ``floor(ln r_j / ln(1 - W_j)) + 1`` values, where W_j is W after the
        j previous ones (each multiplies it by ``u ** (1/capacity)``); its slot is uniform.
        """
        rng, k, n = self._rng, self.capacity, self.BATCH
        log_u = np.log(rng.random(n)) / k
        log_w = self._log_w + np.concatenate(([0.0], np.cumsum(log_u[:-1])))
        skips = np.floor(np.log(rng.random(n)) / np.log1p(-np.exp(log_w))) + 1
        self._at = (after + np.cumsum(np.minimum(skips, 2.0**52))).astype(np.int64).tolist()
        self._slots = (rng.random(n) * k).astype(np.int64).tolist()
        self._log_w = float(log_w[-1] + log_u[-1])
        self._i = 0
        self.next = self._at[0]


@dataclass(eq=False, slots=True)  # slots: the delivery hot path reads several fields per message
class Route:
    src: str
    dst: str
    link_class: str
    latency: float  # one-way, seconds (links + fabric)
    jitter: float
    bottleneck_bps: float
    loss: float
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.0
    blocked: bool = False
    last_arrival: float = 0.0  # FIFO per pair unless reordering is on
    rtt: float = field(default=0.0)
    # Filled in by the network for its hot path:
    src_index: int = 0
    dst_index: int = 0
    trace_key: int = 0
    samples: Reservoir | None = None
    seconds_per_byte: float = 0.0
    impaired: bool = False  # any of blocked/loss/jitter/duplicate/reorder: the slow path


def build_route(topology, src: str, dst: str, faults: list[PairFault]) -> Route:
    links = topology.links_between(src, dst)
    back = topology.links_between(dst, src)
    fabric = topology.fabric_latency(src, dst)
    latency = fabric + sum(link.current_latency for link in links)
    rtt = latency + fabric + sum(link.current_latency for link in back)
    delivered = 1.0
    for link in links:
        delivered *= 1.0 - link.current_loss
    route = Route(
        src=src,
        dst=dst,
        link_class=topology.link_class(src, dst),
        latency=latency,
        jitter=sum(link.jitter for link in links),
        bottleneck_bps=min(link.bandwidth * link.bandwidth_factor for link in links),
        loss=1.0 - delivered,
        rtt=rtt,
    )
    for fault in faults:
        if not fault.applies(src, dst):
            continue
        route.blocked = route.blocked or fault.blocked
        route.loss = 1.0 - (1.0 - route.loss) * (1.0 - fault.loss)
        route.duplicate = max(route.duplicate, fault.duplicate)
        if fault.reorder > route.reorder:
            route.reorder, route.reorder_delay = fault.reorder, fault.reorder_delay
    route.impaired = bool(route.blocked or route.loss or route.jitter or route.duplicate or route.reorder)
    return route
