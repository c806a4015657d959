"""Topology builders, including the WAN built from the real latency matrix."""

import pytest

from novacron.data import inter_region_rtt_ms, region_rtt
from novacron.sim import Simulation, topologies
from novacron.sim.network.routes import build_route


def test_datacenter_fabric_has_sub_millisecond_rtt():
    topo = topologies.datacenter(4, rtt=200e-6)
    route = build_route(topo, "n0", "n1", [])
    assert route.rtt == pytest.approx(200e-6)
    assert route.bottleneck_bps == 25e9
    assert topo.link_class("n0", "n1") == "intra-site"


def test_wan_rtts_come_from_the_shipped_azure_matrix():
    topo = topologies.wan(["West Europe", "East US"])
    matrix_ms = inter_region_rtt_ms()[("West Europe", "East US")]
    route = build_route(topo, "westeurope-0", "eastus-0", [])
    nic_and_fabric = route.rtt - matrix_ms / 1000
    assert 0 <= nic_and_fabric < 1e-3
    assert topo.link_class("westeurope-0", "eastus-0") == "inter-region"


def test_hybrid_has_all_three_link_classes_in_rising_latency():
    topo = topologies.hybrid(
        ["West Europe", "North Europe"], datacenters_per_region=2, nodes_per_datacenter=2
    )
    sim = Simulation(topo, seed=0)
    a = "westeurope-dc0-n0"
    pairs = {
        "intra-site": "westeurope-dc0-n1",
        "intra-region": "westeurope-dc1-n0",
        "inter-region": "northeurope-dc0-n0",
    }
    rtts = {}
    for cls, b in pairs.items():
        assert topo.link_class(a, b) == cls
        rtts[cls] = sim.network.route(a, b).rtt
    assert rtts["intra-site"] < rtts["intra-region"] < rtts["inter-region"]
    assert rtts["inter-region"] >= region_rtt("West Europe", "North Europe")


def test_unknown_regions_are_rejected_with_the_known_list():
    with pytest.raises(ValueError, match="Atlantis.*West Europe"):
        topologies.wan(["West Europe", "Atlantis"])


def test_the_matrix_covers_sixteen_regions_in_both_directions():
    matrix = inter_region_rtt_ms()
    assert len(matrix) == 240
    assert region_rtt("East US", "West US 2") == pytest.approx(region_rtt("West US 2", "East US"), rel=0.2)
