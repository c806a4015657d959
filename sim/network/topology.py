"""Topologies: nodes in sites (datacenters), sites joined by links.

A node attaches to its site by a full-duplex NIC (one :class:`Link` up, one
down). Two nodes in the same site talk over their NICs and the site's
fabric (non-blocking: the fabric adds latency, not contention). Nodes in
different sites also cross the directed site-to-site link, which is where
WAN latency, loss and shared capacity live.

A :class:`Link` is the unit of capacity for the flow model and the unit
that the *degrade* fault changes. Paths are computed once per node pair
(:meth:`Topology.links_between`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cpu import check_cores


@dataclass(eq=False)
class Link:
    """One direction of one physical link.

    ``latency`` is one-way propagation in seconds, ``jitter`` the upper
    bound of a uniform extra delay, ``bandwidth`` in bits per second and
    ``loss`` the random loss probability. ``bandwidth_factor``,
    ``extra_latency`` and ``extra_loss`` are set by faults.
    """

    name: str
    latency: float
    bandwidth: float
    jitter: float = 0.0
    loss: float = 0.0
    bandwidth_factor: float = 1.0
    extra_latency: float = 0.0
    extra_loss: float = 0.0

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise ValueError(f"link {self.name}: latency and jitter must be >= 0")
        if self.bandwidth <= 0:
            raise ValueError(f"link {self.name}: bandwidth must be > 0 bit/s")
        if not 0 <= self.loss < 1:
            raise ValueError(f"link {self.name}: loss must be in [0, 1), got {self.loss}")

    @property
    def capacity(self) -> float:
        """Current capacity in bytes per second."""
        return self.bandwidth * self.bandwidth_factor / 8

    @property
    def current_latency(self) -> float:
        return self.latency + self.extra_latency

    @property
    def current_loss(self) -> float:
        return min(0.999999, self.loss + self.extra_loss)


@dataclass(frozen=True)
class Site:
    """A datacenter: its region/zone labels and its fabric's one-way latency."""

    name: str
    region: str
    zone: str = ""
    fabric_latency: float = 50e-6


@dataclass
class NodeSpec:
    node_id: str
    site: str
    nic_up: Link
    nic_down: Link
    labels: dict[str, str] = field(default_factory=dict)
    #: cores the node's ``rt.compute()`` work queues for (:mod:`novacron.sim.cpu`); None: unlimited
    cores: int | None = None


class Topology:
    """Sites, nodes and links; answers "which links does a message cross?"."""

    def __init__(self, name: str = "custom") -> None:
        self.name = name
        self.sites: dict[str, Site] = {}
        self.nodes: dict[str, NodeSpec] = {}
        self.site_links: dict[tuple[str, str], Link] = {}
        self._paths: dict[tuple[str, str], tuple[Link, ...]] = {}

    # -- building -------------------------------------------------------------
    def add_site(self, name: str, region: str, zone: str = "", fabric_latency: float = 50e-6) -> Site:
        if name in self.sites:
            raise ValueError(f"site {name!r} already exists")
        site = self.sites[name] = Site(name, region, zone or name, fabric_latency)
        return site

    def add_node(
        self,
        node_id: str,
        site: str,
        *,
        nic_bandwidth: float = 25e9,
        nic_latency: float = 5e-6,
        labels: dict[str, str] | None = None,
        cores: int | None = None,
    ) -> NodeSpec:
        """A node at ``site``. ``cores`` bounds how much ``rt.compute()`` work it does at once
        (first come, first served; :mod:`novacron.sim.cpu`); None lets that work overlap freely."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id!r} already exists")
        if site not in self.sites:
            raise ValueError(f"node {node_id!r}: unknown site {site!r} (known: {sorted(self.sites)})")
        if cores is not None:
            try:
                check_cores(cores)
            except ValueError as exc:
                raise ValueError(f"node {node_id!r}: {exc} (or None for no limit)") from None
        spec = NodeSpec(
            node_id,
            site,
            Link(f"{node_id}/up", nic_latency, nic_bandwidth),
            Link(f"{node_id}/down", nic_latency, nic_bandwidth),
            dict(labels or {}),
            cores,
        )
        self.nodes[node_id] = spec
        self._paths.clear()
        return spec

    def connect_sites(
        self,
        a: str,
        b: str,
        *,
        rtt: float,
        bandwidth: float,
        jitter: float = 0.0,
        loss: float = 0.0,
    ) -> tuple[Link, Link]:
        """A full-duplex link between two sites (one :class:`Link` each way)."""
        for s in (a, b):
            if s not in self.sites:
                raise ValueError(f"unknown site {s!r}")
        if a == b:
            raise ValueError("cannot connect a site to itself")
        one_way = rtt / 2
        ab = Link(f"{a}->{b}", one_way, bandwidth, jitter, loss)
        ba = Link(f"{b}->{a}", one_way, bandwidth, jitter, loss)
        self.site_links[(a, b)] = ab
        self.site_links[(b, a)] = ba
        self._paths.clear()
        return ab, ba

    # -- queries --------------------------------------------------------------
    def region_of(self, node_id: str) -> str:
        return self.sites[self.nodes[node_id].site].region

    def site_of(self, node_id: str) -> Site:
        return self.sites[self.nodes[node_id].site]

    def links_between(self, src: str, dst: str) -> tuple[Link, ...]:
        """The links a packet from ``src`` to ``dst`` crosses, in order."""
        key = (src, dst)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = self._compute_path(src, dst)
        return path

    def fabric_latency(self, src: str, dst: str) -> float:
        a, b = self.nodes[src].site, self.nodes[dst].site
        return self.sites[a].fabric_latency + (self.sites[b].fabric_latency if a != b else 0.0)

    def link_class(self, src: str, dst: str) -> str:
        """``intra-site``, ``intra-region`` or ``inter-region``: how reports group links."""
        a, b = self.site_of(src), self.site_of(dst)
        if a.name == b.name:
            return "intra-site"
        return "intra-region" if a.region == b.region else "inter-region"

    def _compute_path(self, src: str, dst: str) -> tuple[Link, ...]:
        try:
            s, d = self.nodes[src], self.nodes[dst]
        except KeyError as missing:
            raise KeyError(f"unknown node {missing.args[0]!r}") from None
        if s.site == d.site:
            return (s.nic_up, d.nic_down)
        wan = self.site_links.get((s.site, d.site))
        if wan is None:
            raise ValueError(f"sites {s.site!r} and {d.site!r} are not connected")
        return (s.nic_up, wan, d.nic_down)

    def all_links(self) -> list[Link]:
        links = [n.nic_up for n in self.nodes.values()] + [n.nic_down for n in self.nodes.values()]
        return links + list(self.site_links.values())

    def summary(self) -> str:
        regions = sorted({s.region for s in self.sites.values()})
        return (
            f"{self.name}: {len(self.nodes)} nodes in {len(self.sites)} sites across {len(regions)} regions"
        )
