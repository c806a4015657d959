"""Per node-pair route state: what the message hot path reads.

A :class:`Route` folds the links of a path and every active fault that
touches the pair into a few numbers, so delivering a message is arithmetic
on one cached object. Routes are rebuilt lazily whenever a fault or a link
changes (the network bumps a version and clears the cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


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
    network's random stream. Slotted, not a list subclass: the delivery hot
    path reads and bumps ``seen`` on every message, and slot access is the
    interpreter's cheapest.
    """

    __slots__ = ("capacity", "seen", "next", "values", "_random", "_inverse", "_w")

    def __init__(self, capacity: int, rng) -> None:
        self.capacity = capacity
        self.seen = 0
        self.values: list[float] = []
        self._random = rng.random
        self._inverse = 1.0 / capacity
        self._w = self._random() ** self._inverse
        self.next = capacity + self._skip()  # the ``seen`` count at which to replace next

    def add(self, value: float) -> None:
        """Offer one value (what the delivery hot path does inline)."""
        self.seen += 1
        if len(self.values) < self.capacity:
            self.values.append(value)
        elif self.seen == self.next:
            self.offer(value)

    def _skip(self) -> int:
        return int(math.log(self._random()) / math.log1p(-self._w)) + 1

    def offer(self, value: float) -> None:
        """Called (by the hot path) when ``seen`` reaches ``next``: a value replaces a random one
        (``random() * capacity`` rather than ``randrange``, and ``u ** (1/k)`` rather than
        ``exp(log(u) / k)``: a run twice as long as the reservoir offers it ~0.7 values per
        capacity, and these calls were a sixth of the delivery hot path's profile)."""
        random = self._random
        self.values[int(random() * self.capacity)] = value
        self._w *= random() ** self._inverse
        self.next += self._skip()


@dataclass(eq=False)
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
