"""A real cluster (processes on loopback) loses its leader to SIGKILL under load: no
acknowledged write is lost, and a new leader serves within a few election timeouts."""

import asyncio
import json
import os
import signal
import time

import pytest

from novacron.backends import new_event_loop
from novacron.backends.cluster_client import connect
from novacron.cli import main as novacron
from novacron.consensus.client import KVClient, OutcomeUnknown
from novacron.consensus.linearizability import check_history

ELECTION_TIMEOUT = 0.3


@pytest.fixture
def cluster(tmp_path):
    directory = tmp_path / "cluster"
    argv = ["cluster", "up", "--dir", str(directory), "--nodes", "3", "--protocol", "raft"]
    argv += ["--election-timeout", f"{int(ELECTION_TIMEOUT * 1000)}ms", "--heartbeat-interval", "50ms"]
    try:
        assert novacron(argv) == 0
        yield directory
    finally:
        novacron(["cluster", "down", "--dir", str(directory), "--grace", "5"])


def test_killing_the_leader_loses_no_acknowledged_write(cluster):
    manifest = json.loads((cluster / "cluster.json").read_text())
    pids = {m["id"]: m["pid"] for m in manifest["members"]}

    async def scenario():
        async with connect(cluster, timeout=3.0, retry_interval=0.2) as kv:
            history = kv.history
            options = {"history": history, "timeout": 3.0, "retry_interval": 0.2}
            members = list(pids)
            me = kv.rt.node_id
            writers = [kv] + [KVClient(kv.rt, members, client_id=f"{me}/w{i}", **options) for i in (1, 2, 3)]
            acked: dict[str, bytes] = {}
            acked_at: list[float] = []
            stop = asyncio.Event()

            async def write_loop(i: int, client: KVClient) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    key, value = f"w{i}-{n}", f"{i}:{n}".encode()
                    try:
                        await client.put(key, value)
                    except OutcomeUnknown:
                        continue  # may or may not have happened: not acknowledged
                    acked[key] = value
                    acked_at.append(time.monotonic())

            tasks = [asyncio.create_task(write_loop(i, c)) for i, c in enumerate(writers)]
            await asyncio.sleep(1.0)
            assert len(acked) > 20, "the cluster should be taking writes before the kill"
            leader = kv.client.leader
            os.kill(pids[leader], signal.SIGKILL)
            killed_at = time.monotonic()
            await asyncio.sleep(4.0)
            stop.set()
            await asyncio.gather(*tasks)

            after = [t for t in acked_at if t > killed_at]
            assert after, "no write was acknowledged after the leader was killed"
            failover = after[0] - killed_at
            # Every acknowledged write is there, read through the new leader (ReadIndex).
            reader = KVClient(kv.rt, members, timeout=5.0, retry_interval=0.2, client_id=f"{me}/reader")
            missing = [k for k, v in sorted(acked.items()) if await reader.get(k) != v]
            return leader, failover, len(acked), missing, history

    loop = new_event_loop()
    try:
        leader, failover, writes, missing, history = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert missing == []
    assert writes > 40
    # "A few election timeouts": detection takes one or two (randomised in [T, 2T)), then a vote.
    assert failover < 10 * ELECTION_TIMEOUT, f"new leader served only {failover:.2f}s after the kill"
    assert check_history(history).ok, "the clients' history must be linearizable"
    print(f"killed {leader}; next write acknowledged {failover * 1000:.0f} ms later; {writes} writes")
