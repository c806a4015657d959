"""The same adaptive host on both runtimes: a Raft -> PBFT switch in the simulator and on
asyncio over loopback TCP (real timeouts there, so every wait polls with a deadline)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from novacron.config import ConsensusConfig  # noqa: E402
from novacron.consensus.adaptive import AdaptiveConsensus  # noqa: E402
from novacron.consensus.kv import Get, KVStore, Put, encode_op  # noqa: E402
from novacron.consensus.pbft import Keyring, PBFTSettings  # noqa: E402
from novacron.consensus.raft import RaftSettings  # noqa: E402

IDS = ["n0", "n1", "n2", "n3"]
RAFT = RaftSettings(heartbeat_interval=0.05, election_timeout=0.3)
PBFT = PBFTSettings(view_change_timeout=1.0, status_interval=0.05, checkpoint_interval=4, watermark_window=16)
KEYS = Keyring.generate(IDS, seed=1)


def app(rt):
    config = ConsensusConfig(protocol="raft")
    return AdaptiveConsensus(
        rt, IDS, KVStore(), config=config, keyring=KEYS, raft_settings=RAFT, pbft_settings=PBFT
    )


async def until(rt, predicate, timeout=10.0):
    deadline = rt.now() + timeout
    while not predicate():
        assert rt.now() < deadline, "condition not met in time"
        await rt.sleep(0.02)


def test_a_switch_to_pbft_hands_the_state_over_on_both_runtimes(harness):
    harness.start(IDS, app)
    hosts = [harness.runtime(i).app for i in IDS]

    async def scenario(rt):
        await until(rt, lambda: any(h.is_leader for h in hosts))
        leader = next(h for h in hosts if h.is_leader).instance
        await leader.propose(encode_op(Put("k", b"before")))
        epoch = await rt.app.switch_to("pbft", timeout=20.0)
        await until(rt, lambda: all(h.running and h.epoch == epoch for h in hosts))
        await until(rt, lambda: len({h.state_machine.snapshot() for h in hosts}) == 1)
        return epoch, [h.state_machine.query(encode_op(Get("k"))) for h in hosts]

    epoch, reads = harness.run("n1", scenario, timeout=60.0)
    assert epoch == 1 and len(set(reads)) == 1 and b"before" in reads[0]
    assert {h.protocol for h in hosts} == {"pbft"}
