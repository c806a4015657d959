"""Topology builders: a datacenter fabric, a WAN of real regions, a hybrid, and a two-node pair.

WAN round-trip times come from the Azure inter-region P95 matrix shipped in
:mod:`novacron.data` (CC BY 4.0). Defaults follow common practice:
25 Gbit/s server NICs, sub-millisecond RTT inside a datacenter, 1-10 Gbit/s
of WAN capacity per region pair, a little jitter and loss on the WAN.
"""

from __future__ import annotations

from novacron.data import region_rtt, regions

from .network.topology import Topology

#: A spread of regions over four continents, for default WAN/hybrid builds.
DEFAULT_REGIONS = ("West Europe", "East US", "West US 2", "Southeast Asia")


def datacenter(
    n_nodes: int,
    *,
    nic_bandwidth: float = 25e9,
    rtt: float = 200e-6,
    region: str = "local",
    site: str = "dc1",
    prefix: str = "n",
    cores: int | None = None,
) -> Topology:
    """``n_nodes`` servers in one datacenter: a non-blocking fabric, sub-ms RTT.

    ``cores`` (here and in :func:`wan` and :func:`hybrid`): each node's core count for
    ``rt.compute()`` work (:mod:`novacron.sim.cpu`); None, the default, lets it overlap freely."""
    if n_nodes < 1:
        raise ValueError("a datacenter needs at least one node")
    topo = Topology(f"datacenter({n_nodes})")
    # RTT = 2 * (fabric + 2 NIC hops); put what is not NIC latency in the fabric.
    nic_latency = 5e-6
    topo.add_site(site, region, fabric_latency=max(0.0, rtt / 2 - 2 * nic_latency))
    for i in range(n_nodes):
        topo.add_node(f"{prefix}{i}", site, nic_bandwidth=nic_bandwidth, nic_latency=nic_latency, cores=cores)
    return topo


def pair(
    *,
    rtt: float = 0.02,
    bandwidth: float = 1e9,
    loss: float = 0.0,
    nic_bandwidth: float = 25e9,
    cores: int | None = None,
) -> Topology:
    """Two nodes, ``x`` and ``y``, in two sites joined by one link of ``rtt``, ``bandwidth`` and
    ``loss`` (NICs with no latency and ``nic_bandwidth``): the smallest WAN, where the link alone
    sets what a transfer gets (``sim.faults.links_between_sites("a", "b")`` to change it).
    ``cores`` applies to ``x``, the sender in most uses."""
    topo = Topology("pair")
    topo.add_site("a", "ra", fabric_latency=0.0)
    topo.add_site("b", "rb", fabric_latency=0.0)
    topo.add_node("x", "a", nic_latency=0.0, nic_bandwidth=nic_bandwidth, cores=cores)
    topo.add_node("y", "b", nic_latency=0.0, nic_bandwidth=nic_bandwidth)
    topo.connect_sites("a", "b", rtt=rtt, bandwidth=bandwidth, loss=loss)
    return topo


def _check_regions(names: tuple[str, ...] | list[str]) -> list[str]:
    known = regions()
    unknown = [r for r in names if r not in known]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; the latency matrix has: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"regions listed twice: {list(names)}")
    return list(names)


def wan(
    region_names: tuple[str, ...] | list[str] = DEFAULT_REGIONS,
    *,
    nodes_per_region: int = 1,
    wan_bandwidth: float = 1e9,
    wan_loss: float = 0.0,
    wan_jitter_fraction: float = 0.02,
    nic_bandwidth: float = 10e9,
    cores: int | None = None,
) -> Topology:
    """One site per region, joined pairwise with the measured inter-region RTTs."""
    names = _check_regions(region_names)
    topo = Topology(f"wan({len(names)} regions)")
    for r in names:
        topo.add_site(_site_name(r), r)
        for i in range(nodes_per_region):
            topo.add_node(f"{_slug(r)}-{i}", _site_name(r), nic_bandwidth=nic_bandwidth, cores=cores)
    _connect_regions(topo, names, wan_bandwidth, wan_loss, wan_jitter_fraction, sites_per_region=1)
    return topo


def hybrid(
    region_names: tuple[str, ...] | list[str] = DEFAULT_REGIONS[:3],
    *,
    datacenters_per_region: int = 2,
    nodes_per_datacenter: int = 4,
    metro_rtt: float = 1.5e-3,
    metro_bandwidth: float = 100e9,
    wan_bandwidth: float = 10e9,
    wan_loss: float = 1e-4,
    wan_jitter_fraction: float = 0.02,
    nic_bandwidth: float = 25e9,
    cores: int | None = None,
) -> Topology:
    """Datacenters inside regions: fast metro links within a region, WAN between."""
    names = _check_regions(region_names)
    topo = Topology(f"hybrid({len(names)} regions x {datacenters_per_region} DCs)")
    for r in names:
        for d in range(datacenters_per_region):
            site = f"{_slug(r)}-dc{d}"
            topo.add_site(site, r, zone=f"{r}/{d}")
            for i in range(nodes_per_datacenter):
                topo.add_node(f"{site}-n{i}", site, nic_bandwidth=nic_bandwidth, cores=cores)
        sites = [f"{_slug(r)}-dc{d}" for d in range(datacenters_per_region)]
        for i, a in enumerate(sites):
            for b in sites[i + 1 :]:
                topo.connect_sites(a, b, rtt=metro_rtt, bandwidth=metro_bandwidth, jitter=metro_rtt * 0.05)
    _connect_regions(topo, names, wan_bandwidth, wan_loss, wan_jitter_fraction, datacenters_per_region)
    return topo


def _connect_regions(topo, names, bandwidth, loss, jitter_fraction, sites_per_region) -> None:
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rtt = region_rtt(a, b)
            for da in range(sites_per_region):
                for db in range(sites_per_region):
                    sa = _site_name(a) if sites_per_region == 1 else f"{_slug(a)}-dc{da}"
                    sb = _site_name(b) if sites_per_region == 1 else f"{_slug(b)}-dc{db}"
                    topo.connect_sites(
                        sa, sb, rtt=rtt, bandwidth=bandwidth, jitter=rtt * jitter_fraction, loss=loss
                    )


def _slug(region: str) -> str:
    return region.lower().replace(" ", "")


def _site_name(region: str) -> str:
    return f"{_slug(region)}-dc"
