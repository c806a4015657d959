"""Simulated messages: latency, FIFO order, loss, partitions and bursts."""

import pytest

from novacron.runtime import Message
from novacron.sim import Simulation, Topology, topologies


class Note(Message):
    seq: int
    sent_at: float


def two_sites(rtt=0.1, loss=0.0, jitter=0.0) -> Topology:
    topo = Topology("two-sites")
    topo.add_site("a", "ra", fabric_latency=0.0)
    topo.add_site("b", "rb", fabric_latency=0.0)
    topo.add_node("x", "a", nic_latency=0.0)
    topo.add_node("y", "b", nic_latency=0.0)
    topo.connect_sites("a", "b", rtt=rtt, bandwidth=1e9, loss=loss, jitter=jitter)
    return topo


def collect(sim, node):
    got = []
    sim.runtime(node).on_message(Note, lambda src, m: got.append((sim.now, src, m)))
    return got


def test_one_way_delay_is_half_the_rtt_plus_serialisation():
    sim = Simulation(two_sites(rtt=0.1), seed=1)
    got = collect(sim, "y")
    sim.runtime("x").send("y", Note(1, 0.0))
    sim.run()
    ((t, src, msg),) = got
    assert src == "x" and msg.seq == 1
    assert 0.05 < t < 0.0501  # 50 ms + a few microseconds on the wire


def test_messages_on_one_pair_arrive_in_order_despite_jitter():
    sim = Simulation(two_sites(jitter=0.05), seed=3)
    got = collect(sim, "y")
    for i in range(200):
        sim.call_at(i * 0.001, sim.runtime("x").send, "y", Note(i, 0.0))
    sim.run()
    assert [m.seq for _, _, m in got] == list(range(200))


def test_reorder_burst_lets_messages_overtake():
    sim = Simulation(two_sites(), seed=3)
    got = collect(sim, "y")
    sim.faults.burst(reorder=0.5, reorder_delay=0.05)
    for i in range(200):
        sim.call_at(i * 0.001, sim.runtime("x").send, "y", Note(i, 0.0))
    sim.run()
    seqs = [m.seq for _, _, m in got]
    assert sorted(seqs) == list(range(200)) and seqs != sorted(seqs)


def test_link_loss_drops_about_the_configured_share():
    sim = Simulation(two_sites(loss=0.2), seed=5)
    got = collect(sim, "y")
    for i in range(5000):
        sim.runtime("x").send("y", Note(i, 0.0))
    sim.run()
    assert 0.18 < 1 - len(got) / 5000 < 0.22
    assert sim.network.dropped == 5000 - len(got)


def test_duplicate_burst_delivers_some_messages_twice():
    sim = Simulation(two_sites(), seed=5)
    got = collect(sim, "y")
    sim.faults.burst(duplicate=0.3)
    for i in range(1000):
        sim.runtime("x").send("y", Note(i, 0.0))
    sim.run()
    assert 1200 < len(got) < 1400
    assert {m.seq for _, _, m in got} == set(range(1000))


def test_symmetric_partition_blocks_both_ways_until_healed():
    sim = Simulation(two_sites(), seed=1)
    at_x, at_y = collect(sim, "x"), collect(sim, "y")
    sim.faults.partition(["x"], ["y"], at=1.0, duration=1.0)
    for t in (0.5, 1.5, 2.5):
        sim.call_at(t, sim.runtime("x").send, "y", Note(int(t * 10), t))
        sim.call_at(t, sim.runtime("y").send, "x", Note(int(t * 10), t))
    sim.run()
    assert [m.seq for *_, m in at_y] == [5, 25]
    assert [m.seq for *_, m in at_x] == [5, 25]


def test_one_way_partition_blocks_only_one_direction():
    sim = Simulation(two_sites(), seed=1)
    at_x, at_y = collect(sim, "x"), collect(sim, "y")
    sim.faults.partition(["x"], ["y"], one_way=True)
    sim.runtime("x").send("y", Note(1, 0.0))
    sim.runtime("y").send("x", Note(2, 0.0))
    sim.run()
    assert at_y == [] and [m.seq for *_, m in at_x] == [2]


def test_messages_to_a_crashed_node_are_lost_and_its_handlers_are_gone_after_restart():
    sim = Simulation(two_sites(), seed=1)
    got = collect(sim, "y")
    sim.faults.crash("y", at=0.01, restart_after=1.0)
    sim.runtime("x").send("y", Note(1, 0.0))  # arrives at 0.05: y is down
    sim.call_at(2.0, sim.runtime("x").send, "y", Note(2, 0.0))  # y is back, but nobody registered
    sim.run()
    assert got == []
    assert sim.network.counters["dropped_dead"] == 1
    assert sim.runtime("y").incarnation == 2 and sim.runtime("y").unhandled_messages == 1


def test_sending_to_an_unknown_node_is_dropped_and_counted_not_raised():
    sim = Simulation(two_sites(), seed=1)
    sim.runtime("x").send("nobody", Note(1, 0.0))
    assert sim.network.counters["unknown_destination"] == 1


def test_degrading_a_wan_link_adds_latency():
    sim = Simulation(two_sites(rtt=0.1), seed=1)
    got = collect(sim, "y")
    sim.faults.degrade(sim.faults.links_between_sites("a", "b"), extra_latency=0.2)
    sim.runtime("x").send("y", Note(1, 0.0))
    sim.run()
    assert got[0][0] == pytest.approx(0.25, abs=1e-4)


def test_unknown_nodes_in_faults_are_rejected_by_name():
    sim = Simulation(topologies.datacenter(2), seed=1)
    with pytest.raises(KeyError, match="ghost"):
        sim.faults.partition(["ghost"])
