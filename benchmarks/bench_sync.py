"""ASS anti-entropy against state-based gossip (every round, the whole map to a random peer).

Five replicas, one per region of the inter-region latency matrix, in the simulator, share a map of
``--keys`` keys. A partition splits them 2 | 3 for ten seconds while each side writes
``--changed`` keys (half each); then it heals. Measured from the heal: the simulated seconds until
every replica holds the same map, and the bytes of sync messages sent meanwhile; then, in sync, the
bytes per second the protocol costs. The baseline is the textbook state-based CRDT replication
(Shapiro et al., 2011): every ``interval`` each replica sends its whole state to one random peer,
which joins it. Both use the same states (``VersionSet``), joins and interval (ASS's internet-mode
setting, 5 s); ASS also pushes each write at once, which reaches only the writer's side during the
partition. Virtual time and message sizes (the wire encoding), so the figures do not depend on
the machine.

Run: .venv/bin/python benchmarks/bench_sync.py [--keys 10000] [--changed 100] [--seed 0]
"""

from __future__ import annotations

import argparse

from common import report

from novacron.runtime import Message, encoded_size
from novacron.sim import Simulation, topologies
from novacron.sync import ReplicaStore, StateSync, SyncPush, SyncSettings, VersionSet

REGIONS = ("East US", "West Europe", "Southeast Asia", "Brazil South", "Australia East")
PARTITION = (1.0, 11.0)  # start, heal
INTERVAL = SyncSettings.for_mode("internet").interval


class FullStateGossip:
    """The baseline: every ``interval``, the whole map to one random peer, who joins it."""

    def __init__(self, rt, *, interval: float) -> None:
        self.rt, self.interval = rt, interval
        self.peers = tuple(p for p in rt.peers if p != rt.node_id)
        self.store = ReplicaStore(rt.node_id)
        rt.on_message(SyncPush, self._on_push)
        rt.call_later(rt.random.uniform(0, interval), self._round)

    async def put(self, key: str, value: bytes, context=None) -> VersionSet:
        return self.store.write(key, value, context)

    def _round(self) -> None:
        self.rt.call_later(self.interval, self._round)
        items = tuple((key, self.store.get(key)) for key in sorted(self.store.keys()))
        self.rt.send(self.rt.random.choice(self.peers), SyncPush(items))

    def _on_push(self, src: str, msg: SyncPush) -> None:
        for key, state in msg.items:
            self.store.join(key, state)


def run(protocol: str, keys: int, changed: int, seed: int) -> dict:
    sim = Simulation(topologies.wan(REGIONS), seed=seed)
    nodes = sim.node_ids
    preloaded = {f"vm/{i:06d}": VersionSet().write(nodes[0], b"host-%06d" % i) for i in range(keys)}
    sent = {"bytes": 0}
    replicas = {}

    def app(rt):
        send = rt.send

        def counted(dst: str, message: Message) -> None:
            sent["bytes"] += encoded_size(message)
            send(dst, message)

        rt.send = counted
        if protocol == "ass":
            replica = StateSync(rt, settings=SyncSettings.for_mode("internet"))
        else:
            replica = FullStateGossip(rt, interval=INTERVAL)
        for key, state in preloaded.items():
            replica.store.join(key, state)
        replicas[rt.node_id] = replica
        return replica

    sim.start(app)
    left, right = nodes[:2], nodes[2:]
    sim.faults.partition(left, right, at=PARTITION[0], duration=PARTITION[1] - PARTITION[0])

    async def writes(rt, names):
        await rt.sleep(PARTITION[0] + 1.0)
        for key in names:
            replica = replicas[rt.node_id]
            await replica.put(key, f"moved-by-{rt.node_id}".encode(), replica.store.get(key).context)

    names = sorted(preloaded)[:changed]
    sim.runtime(left[0]).spawn(writes(sim.runtime(left[0]), names[::2]))
    sim.runtime(right[0]).spawn(writes(sim.runtime(right[0]), names[1::2]))
    sim.run(until=PARTITION[1])
    at_heal = sent["bytes"]

    def tree(node: str) -> list[int]:
        store = replicas[node].store
        return store.leaf_hashes(list(range(store.width)))

    def same() -> bool:  # the hash trees agree (checked against the maps themselves at the end)
        first = tree(nodes[0])
        return all(tree(n) == first for n in nodes[1:])

    converged = None
    while sim.now < PARTITION[1] + 600.0:
        sim.run(until=sim.now + 0.05)
        if same():
            converged = sim.now
            break
    assert converged is not None, f"{protocol} did not converge in 600 s"
    repair_bytes = sent["bytes"] - at_heal
    steady_from = sent["bytes"]
    sim.run(until=converged + 60.0)
    first = replicas[nodes[0]].store
    assert all(
        {k: replicas[n].store.get(k) for k in first.keys()} == {k: first.get(k) for k in first.keys()}
        for n in nodes
    )
    assert all(len(replicas[n].store) == keys for n in nodes)
    return {
        "protocol": protocol,
        "converged_s_after_heal": round(converged - PARTITION[1], 2),
        "repair_MB": round(repair_bytes / 1e6, 3),
        "in_sync_kB_per_s": round((sent["bytes"] - steady_from) / 60.0 / 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = [run("full_state_gossip (baseline)", args.keys, args.changed, args.seed)]
    rows.append(run("ass", args.keys, args.changed, args.seed))
    base, ours = rows
    for row in rows:
        row["repair_bytes_vs_baseline"] = round(row["repair_MB"] / base["repair_MB"], 4)
    report(
        f"ASS anti-entropy vs full-state gossip: 5 WAN replicas, {args.keys} keys, "
        f"{args.changed} changed during a 10 s partition (simulated; seed {args.seed})",
        rows,
    )


if __name__ == "__main__":
    main()
