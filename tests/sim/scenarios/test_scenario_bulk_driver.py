"""The bulk-transfer driver is protocol code: contract only, seeded arrivals, peers chosen by distance."""

import ast
from pathlib import Path

import pytest

import novacron.sim.scenarios.bulk_driver as bulk_driver
from novacron.sim import Simulation, topologies
from novacron.sim.scenarios import BulkTransferDriver, TransferPlan

MiB = 2**20


def plan(**changes) -> TransferPlan:
    fields = dict(
        tag="bulk/t", scope="any", mean_gap=1.0, min_bytes=64 * MiB, max_bytes=128 * MiB, streams=(2,)
    )
    return TransferPlan(**(fields | changes))


class Recorder:
    def __init__(self):
        self.starts, self.failures = [], []

    def started(self, plan, src, dst, nbytes, streams):
        self.starts.append((src, dst, nbytes, streams))

    def failed(self, plan, src, dst, error):
        self.failures.append((src, dst, str(error)))


def run(topology, plans, *, until=20.0, seed=1, before_run=None):
    sim = Simulation(topology, seed=seed)
    recorder = Recorder()
    sim.start(lambda rt: BulkTransferDriver(rt, plans, observer=recorder))
    if before_run is not None:
        before_run(sim)
    sim.run(until)
    return sim, recorder


def test_the_driver_imports_only_the_contract():
    tree = ast.parse(Path(bulk_driver.__file__).read_text())
    roots = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    roots |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not roots & {"simpy", "asyncio", "time", "random"}, roots
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert modules <= {"__future__", "collections.abc", "dataclasses", "typing", "novacron.runtime"}


@pytest.mark.parametrize("scope", ["intra-site", "intra-region", "inter-region"])
def test_transfers_go_only_to_peers_at_the_plans_distance(scope):
    topo = topologies.hybrid(["West Europe", "East US"], datacenters_per_region=2, nodes_per_datacenter=2)
    small = plan(scope=scope, mean_gap=4.0, min_bytes=MiB, max_bytes=4 * MiB)
    sim, recorder = run(topo, [small], until=10.0)
    assert recorder.starts, "some transfers started"
    assert {topo.link_class(src, dst) for src, dst, _, _ in recorder.starts} == {scope}
    assert {topo.link_class(r.src, r.dst) for r in sim.network.transfer_log} == {scope}


def test_arrivals_follow_the_mean_gap_and_sizes_and_streams_stay_in_range():
    topo = topologies.datacenter(4)
    choices = plan(mean_gap=2.0, streams=(1, 4), min_bytes=10 * MiB, max_bytes=20 * MiB)
    sim, recorder = run(topo, [choices], until=50.0)
    expected = 4 * 50.0 / 2.0  # four sources, one transfer per 2 s each
    assert 0.6 * expected < len(recorder.starts) < 1.4 * expected
    assert all(10 * MiB <= n <= 20 * MiB for _, _, n, _ in recorder.starts)
    assert {s for *_, s in recorder.starts} == {1, 4}
    assert {r.tag for r in sim.network.transfer_log} == {"bulk/t"}


def test_the_same_seed_chooses_the_same_transfers_and_another_seed_does_not():
    topo = topologies.datacenter(4)
    first = run(topo, [plan()], seed=5)[1].starts
    assert run(topologies.datacenter(4), [plan()], seed=5)[1].starts == first
    assert run(topologies.datacenter(4), [plan()], seed=6)[1].starts != first


def test_a_node_without_a_peer_at_that_distance_originates_nothing():
    sim, recorder = run(topologies.datacenter(4), [plan(scope="inter-region")], until=10.0)
    assert recorder.starts == [] and sim.network.transfer_log == []


def test_transfers_to_a_crashed_peer_are_reported_as_failed():
    def crash_all_but_n0(sim):
        for node in ("n1", "n2", "n3"):
            sim.faults.crash(node, at=0.5)

    sim, recorder = run(
        topologies.datacenter(4), [plan(mean_gap=0.5)], until=5.0, before_run=crash_all_but_n0
    )
    assert recorder.failures
    assert all(src == "n0" and dst != "n0" for src, dst, _ in recorder.failures)


def test_the_receiver_counts_what_it_received():
    sim, _ = run(topologies.datacenter(2), [plan(mean_gap=1.0)], until=10.0)
    received = sum(sim.runtime(n).app.received_bytes for n in sim.node_ids)
    assert received == sum(r.nbytes for r in sim.network.transfer_log) > 0


@pytest.mark.parametrize(
    "changes",
    [
        dict(scope="nearby"),
        dict(mean_gap=0.0),
        dict(min_bytes=2, max_bytes=1),
        dict(streams=()),
        dict(congestion=()),
    ],
)
def test_a_nonsensical_plan_is_refused(changes):
    with pytest.raises(ValueError):
        plan(**changes)
