"""A node's Prometheus metrics: what ``/metrics`` shows about each component, read at scrape time.

The collector is scraped the way Prometheus does (the text exposition, parsed back with
prometheus_client's own parser), against real components: simulated clusters for the protocols,
an asyncio runtime on loopback for the network counters.
"""

from __future__ import annotations

import asyncio
from dataclasses import fields

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from novacron.backends import LocalCluster, NetworkStats
from novacron.consensus.adaptive import start_member
from novacron.consensus.kv import KVStore, Put, encode_op
from novacron.consensus.pbft import Keyring
from novacron.mode import DetectionSettings, Mode, ModeDetector
from novacron.monitoring import HeartbeatService
from novacron.monitoring.metrics import NodeCollector, node_registry
from novacron.runtime import Message
from novacron.sim import Simulation, topologies
from novacron.sync import StateSync, SyncSettings


class Hello(Message, tag="monitoring-test/hello"):
    n: int


def scrape(collector: NodeCollector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (sample name, labels) -> value."""
    text = generate_latest(node_registry(collector)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples}


def helps(collector: NodeCollector) -> dict[str, str]:
    text = generate_latest(node_registry(collector)).decode()
    return {f.name: f.documentation for f in text_string_to_metric_families(text)}


# --- the node itself, and absent components ---------------------------------------------------


def test_a_bare_node_shows_its_identity_uptime_and_process_only():
    sim = Simulation(topologies.datacenter(2), seed=0)
    rt = sim.runtime("n0")
    collector = NodeCollector(rt, version="1.2.3")
    sim.run(until=5.0)
    samples = scrape(collector)
    info = rt.info
    assert (
        value(samples, "novacron_node_info", node="n0", region=info.region, zone=info.zone, version="1.2.3")
        == 1
    )
    assert value(samples, "novacron_uptime_seconds") == pytest.approx(5.0)
    novacron = {n for n in names(samples) if n.startswith("novacron_")}
    assert novacron == {"novacron_node_info", "novacron_uptime_seconds"}  # nothing else runs
    assert "python_info" in names(samples)  # the platform collector is in the node's registry
    assert collector.summary() == {"node": "n0", "uptime_seconds": 5.0}


def test_every_node_has_a_registry_of_its_own():
    sim = Simulation(topologies.datacenter(2), seed=0)
    a, b = (scrape(NodeCollector(sim.runtime(n))) for n in ("n0", "n1"))
    assert {dict(labels)["node"] for name, labels in a if name == "novacron_node_info"} == {"n0"}
    assert {dict(labels)["node"] for name, labels in b if name == "novacron_node_info"} == {"n1"}


def test_anything_but_a_consensus_member_is_refused():
    sim = Simulation(topologies.datacenter(1), seed=0)
    with pytest.raises(TypeError, match="not a consensus member"):
        NodeCollector(sim.runtime("n0"), consensus=object())


# --- network counters -------------------------------------------------------------------------


async def test_network_counters_rise_as_the_runtime_sends_and_receives(tmp_path):
    heard: list[int] = []

    def app(rt):
        rt.on_message(Hello, lambda src, msg: heard.append(msg.n))

    async with LocalCluster(tmp_path) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], app)
        at_a, at_b = NodeCollector(a, network=a.stats), NodeCollector(b, network=b.stats)
        assert value(scrape(at_a), "novacron_network_sent_total") == 0
        for n in range(3):
            a.send("b", Hello(n))
        async with asyncio.timeout(30):
            while len(heard) < 3:
                await asyncio.sleep(0.01)
        assert value(scrape(at_a), "novacron_network_sent_total") == 3
        assert value(scrape(at_b), "novacron_network_received_total") == 3
        assert value(scrape(at_a), "novacron_network_connects_total") == 1


def test_every_network_counter_is_exported_with_the_help_written_beside_it():
    sim = Simulation(topologies.datacenter(1), seed=0)
    stats = NetworkStats()
    collector = NodeCollector(sim.runtime("n0"), network=stats)
    documented = helps(collector)
    for f in fields(NetworkStats):
        assert documented[f"novacron_network_{f.name}"] == f.metadata["help"]
    assert documented["novacron_network_sent"] == "message frames handed to a socket"


def test_refusals_are_counted_by_reason():
    sim = Simulation(topologies.datacenter(1), seed=0)
    stats = NetworkStats()
    collector = NodeCollector(sim.runtime("n0"), network=stats)
    stats.rejected["malformed"] += 2
    stats.rejected["oversize"] += 1
    samples = scrape(collector)
    assert value(samples, "novacron_network_rejected_total", reason="malformed") == 2
    assert value(samples, "novacron_network_rejected_total", reason="oversize") == 1


# --- heartbeats -------------------------------------------------------------------------------


def test_heartbeats_show_each_peers_rtt_and_a_crashed_peer_as_suspected():
    sim = Simulation(topologies.datacenter(3), seed=1)
    sim.start(lambda rt: HeartbeatService(rt, interval=0.1))
    rt = sim.runtime("n0")
    collector = NodeCollector(rt, heartbeat=rt.app)
    sim.run(until=2.0)
    samples = scrape(collector)
    for peer in ("n1", "n2"):
        assert value(samples, "novacron_heartbeat_suspected", peer=peer) == 0
        assert 0 < value(samples, "novacron_heartbeat_rtt_seconds", peer=peer) < 0.01
    acks_before = value(samples, "novacron_heartbeat_acks_total", peer="n1")
    assert collector.summary()["peers_answering"] == ["n1", "n2"]

    sim.crash("n2")
    sim.run(until=4.0)
    samples = scrape(collector)
    assert value(samples, "novacron_heartbeat_suspected", peer="n2") == 1
    assert value(samples, "novacron_heartbeat_suspected", peer="n1") == 0
    assert value(samples, "novacron_heartbeat_acks_total", peer="n1") > acks_before
    assert collector.summary()["peers_answering"] == ["n1"]


# --- consensus --------------------------------------------------------------------------------


def _raft_cluster() -> tuple[Simulation, str]:
    sim = Simulation(topologies.datacenter(3), seed=2)
    ids = sim.node_ids
    sim.start(lambda rt: start_member(rt, "raft", ids, KVStore()))
    for _ in range(100):
        sim.run(until=sim.now + 0.5)
        leaders = [n for n in ids if sim.runtime(n).app.is_leader]
        if leaders:
            return sim, leaders[0]
    raise AssertionError("no Raft leader in 50 simulated seconds")


def test_a_raft_member_shows_its_role_leader_term_and_indexes():
    sim, leader = _raft_cluster()
    follower = next(n for n in sim.node_ids if n != leader)
    at_leader = NodeCollector(sim.runtime(leader), consensus=sim.runtime(leader).app)
    at_follower = NodeCollector(sim.runtime(follower), consensus=sim.runtime(follower).app)
    samples = scrape(at_leader)
    term = sim.runtime(leader).app.term
    assert value(samples, "novacron_consensus_info", protocol="raft", role="leader", leader=leader) == 1
    assert value(samples, "novacron_consensus_is_leader") == 1
    assert value(samples, "novacron_consensus_term") == term >= 1
    applied_before = value(samples, "novacron_consensus_applied_index")
    assert "novacron_consensus_stable_checkpoint" not in names(samples)  # PBFT's, not Raft's

    async def put(rt):
        await rt.app.propose(encode_op(Put("k", b"v")))

    sim.run_until_complete(leader, put, timeout=30)
    samples = scrape(at_leader)
    assert value(samples, "novacron_consensus_applied_index") > applied_before
    assert value(samples, "novacron_consensus_commit_index") >= value(
        samples, "novacron_consensus_applied_index"
    )

    samples = scrape(at_follower)
    assert value(samples, "novacron_consensus_info", protocol="raft", role="follower", leader=leader) == 1
    assert value(samples, "novacron_consensus_is_leader") == 0
    expected = {"protocol": "raft", "role": "follower", "leader": leader, "term": term}
    assert at_follower.summary()["consensus"] == expected


def test_a_pbft_member_shows_its_view_primary_and_checkpoint():
    sim = Simulation(topologies.datacenter(4), seed=3)
    ids = sim.node_ids
    keys = Keyring.generate(ids, seed=3)
    sim.start(lambda rt: start_member(rt, "pbft", ids, KVStore(), keyring=keys))
    sim.run(until=2.0)
    replicas = {n: sim.runtime(n).app for n in ids}
    primary = replicas["n0"].primary
    backup = next(n for n in ids if n != primary)
    samples = scrape(NodeCollector(sim.runtime(primary), consensus=replicas[primary]))
    assert value(samples, "novacron_consensus_info", protocol="pbft", role="primary", leader=primary) == 1
    assert value(samples, "novacron_consensus_is_leader") == 1
    assert value(samples, "novacron_consensus_term") == replicas[primary].view
    assert value(samples, "novacron_consensus_stable_checkpoint") == replicas[primary].stable_checkpoint
    assert "novacron_consensus_commit_index" not in names(samples)  # PBFT has no single one
    samples = scrape(NodeCollector(sim.runtime(backup), consensus=replicas[backup]))
    assert value(samples, "novacron_consensus_info", protocol="pbft", role="backup", leader=primary) == 1
    assert value(samples, "novacron_consensus_is_leader") == 0


# --- state sync and the network mode ----------------------------------------------------------


def test_a_state_sync_replica_shows_its_keys_and_counters():
    sim = Simulation(topologies.datacenter(2), seed=4)
    sim.start(lambda rt: StateSync(rt, settings=SyncSettings(interval=0.5)))
    writer, reader = sim.runtime("n0"), sim.runtime("n1")

    async def write(rt):
        await rt.app.put("vm/1", b"host-a")
        await rt.app.put("vm/2", b"host-b")

    sim.run_until_complete("n0", write, timeout=30)
    sim.run(until=sim.now + 3.0)
    at_writer = scrape(NodeCollector(writer, state_sync=writer.app))
    at_reader = scrape(NodeCollector(reader, state_sync=reader.app))
    assert value(at_writer, "novacron_sync_writes_total") == 2
    assert value(at_reader, "novacron_sync_writes_total") == 0
    assert value(at_reader, "novacron_sync_keys") == value(at_writer, "novacron_sync_keys") == 2
    assert value(at_reader, "novacron_sync_keys_learnt_total") == 2
    assert value(at_reader, "novacron_sync_rounds_total") > 0


def test_the_network_mode_is_shown_when_a_detector_runs():
    sim = Simulation(topologies.datacenter(3), seed=5)
    rt = sim.runtime("n0")
    detector = ModeDetector(rt, DetectionSettings(forced_mode=Mode.INTERNET))
    samples = scrape(NodeCollector(rt, detector=detector))
    assert value(samples, "novacron_network_mode", mode="internet") == 1
    for peer in ("n1", "n2"):
        assert value(samples, "novacron_network_peer_mode", peer=peer, mode="internet") == 1
