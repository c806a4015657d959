"""Which protocol ACP picks, and starting a member of a fixed protocol or the adaptive host."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from novacron.config import ConsensusConfig  # noqa: E402
from novacron.consensus.adaptive import AdaptiveConsensus, choose_protocol, start_member  # noqa: E402
from novacron.consensus.kv import KVStore  # noqa: E402
from novacron.consensus.raft import RaftNode  # noqa: E402
from novacron.sim import Simulation, topologies  # noqa: E402


@pytest.mark.parametrize("protocol", ["raft", "pbft", "auto"])
@pytest.mark.parametrize("mode", [None, "datacenter", "hybrid", "internet"])
def test_byzantine_tolerance_always_means_pbft(protocol, mode):
    assert choose_protocol(ConsensusConfig(protocol=protocol, byzantine_tolerance=True), mode) == "pbft"


@pytest.mark.parametrize("protocol", ["raft", "pbft"])
@pytest.mark.parametrize("mode", [None, "datacenter", "internet"])
def test_an_explicit_protocol_is_honoured_whatever_the_mode(protocol, mode):
    assert choose_protocol(ConsensusConfig(protocol=protocol), mode) == protocol


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(None, "raft"), ("", "raft"), ("datacenter", "raft"), ("hybrid", "pbft"), ("internet", "pbft")],
)
def test_auto_follows_the_network_mode(mode, expected):
    assert choose_protocol(ConsensusConfig(protocol="auto"), mode) == expected


def test_start_member_keeps_starting_a_fixed_protocol_and_the_adaptive_host():
    sim = Simulation(topologies.datacenter(3), seed=0)
    ids = sim.node_ids
    fixed = start_member(sim.runtime("n0"), "raft", ids, KVStore())
    assert isinstance(fixed, RaftNode)
    host = start_member(
        sim.runtime("n1"), "adaptive", ids, KVStore(), config=ConsensusConfig(protocol="auto")
    )
    assert isinstance(host, AdaptiveConsensus) and host.protocol == "raft" and host.epoch == 0
    with pytest.raises(ValueError, match="unknown consensus protocol"):
        start_member(sim.runtime("n2"), "paxos", ids, KVStore())


def test_byzantine_tolerance_refuses_a_switch_to_raft():
    sim = Simulation(topologies.datacenter(4), seed=0)
    from novacron.consensus.pbft import Keyring

    ids = sim.node_ids
    config = ConsensusConfig(protocol="auto", byzantine_tolerance=True)
    sim.start(lambda rt: AdaptiveConsensus(rt, ids, KVStore(), config=config, keyring=Keyring.generate(ids)))
    host = sim.runtime("n0").app
    assert host.protocol == "pbft"

    async def try_raft(rt):
        await rt.app.switch_to("raft")

    with pytest.raises(ValueError, match="byzantine_tolerance"):
        sim.run_until_complete("n0", try_raft)
