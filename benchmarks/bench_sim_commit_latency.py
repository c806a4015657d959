"""Commit latency at low load against the theoretical minimum, Raft and PBFT, in the simulator.

One client, sequential puts (``--ops``, default 200, after a few warm-up ones), for a few
topologies. Every server sits in its own site (site fabric 0, NICs 5 us each way); the client is
a node in the leader's (primary's) site, so it is colocated (~10 us one way). ``d(a, b)`` below is
the simulator route's one-way base latency (links + NICs; message serialisation, < 2 us here,
and jitter are left out), read from ``sim.network.route(a, b).latency``.

Raft (``RaftNode``, our defaults incl. pre-vote and check-quorum; the leader is chosen by
giving one node a shorter fixed election timeout):

* leader-side commit latency = from the leader receiving the client request to the leader
  applying it (in the simulator apply happens at the commit instant);
  minimum = the (q-1)-th smallest leader-follower RTT (q = majority): the leader sends
  AppendEntries at once, and commits on the (q-1)-th acknowledgement (its own copy counts);
  plus one storage sync F (``SimStorage.fsync_latency``; 0 by default, ``--fsync-ms`` sets it
  on every server): the leader may write its own copy in parallel with sending (Raft paper
  §10.2.1), so a follower's sync is the one on the path. Our host syncs the leader's copy
  *before* sending AppendEntries (``RaftNode._process``: persist, sync, then send), so with
  F > 0 it takes F + RTT + F: ``--fsync-ms 1`` shows it;
* client-observed latency; minimum = d(c, L) + commit minimum + d(L, c).

PBFT (``PBFTReplica``, n = 3f + 1 = 4, Ed25519, no CPU time is modelled for signatures):
the client sends to the primary p and waits for f + 1 matching replies. The minimum is the
critical path of the normal case with every message on its base latency, computed per replica
(``pbft_minimum``):

* pre-prepare at backup i: ``pp(i) = d(c, p) + d(p, i)``; at the primary ``pp(p) = d(c, p)``;
* replica j is *prepared* once it has the pre-prepare and 2f prepares from backups (a backup's
  own prepare counts; the primary sends none): ``prep(j) = max(pp(j), 2f-th smallest over
  backups k of pp(k) + d(k, j))``;
* j is *committed* with 2f + 1 commits (its own included): ``com(j) = max(prep(j),
  (2f+1)-th smallest over all k of prep(k) + d(k, j))``; it executes and replies then;
* the client has its answer at the (f + 1)-th smallest ``com(j) + d(j, c)``.

With a storage sync time F, ``PBFTReplica`` (crash recovery: see ``pbft/node.py``) holds each
round's protocol messages until the round's log writes are synced, so every pre-prepare,
prepare and commit leaves F after the replica decided to send it (its own vote counts at
once); client replies are not held. The minimum adds F at those three points of the path
(the original PBFT kept its log in memory and had no F at all).

So the minimum takes, at every phase, the fastest quorum *for each receiver*, which is not one
fixed set of replicas on unequal links. On equal links it is the familiar d(c,p) + 3 one-way
delays + d(j, c).

Output: one table, measured p50 and mean against the minimum, per protocol and topology
(target: within 1.2x at low load).

Run: .venv/bin/python benchmarks/bench_sim_commit_latency.py [--ops 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

from common import report
from tqdm.auto import tqdm

from novacron.consensus.api import ClientRequest, Command, NullObserver
from novacron.consensus.client import KVClient
from novacron.consensus.kv import KVStore
from novacron.consensus.pbft import Keyring, PBFTReplica, PBFTSettings
from novacron.consensus.raft import RaftNode, RaftSettings
from novacron.sim import Simulation, Topology, topologies

CLIENT = "client"
WARMUP = 5
AZURE = ("West Europe", "North Europe", "Germany West Central", "East US", "Southeast Asia")


@dataclass
class Setup:
    name: str
    topo: Topology
    servers: list[str]  # the first one leads (Raft) or is the view-0 primary (PBFT)
    mode: str  # network mode for the protocol timings


def own_sites(name: str, positions_ms: list[float], jitter_fraction: float = 0.0) -> Setup:
    """One server per site on a line (one-way delay = distance); the client in the first site."""
    topo = Topology(name)
    servers = [f"s{i}" for i in range(len(positions_ms))]
    for i, s in enumerate(servers):
        topo.add_site(f"site{i}", f"r{i}", fabric_latency=0.0)
        topo.add_node(s, f"site{i}")
    for i in range(len(servers)):
        for j in range(i + 1, len(servers)):
            rtt = 2 * abs(positions_ms[i] - positions_ms[j]) / 1e3
            topo.connect_sites(f"site{i}", f"site{j}", rtt=rtt, bandwidth=10e9, jitter=rtt * jitter_fraction)
    topo.add_node(CLIENT, "site0")
    return Setup(name, topo, servers, "datacenter" if max(positions_ms) < 5 else "internet")


def datacenter(n: int) -> Setup:
    """n servers, 0.5 ms RTT between any two (a star: each 0.125 ms one way from a hub)."""
    topo = Topology(f"dc-{n}")
    servers = [f"s{i}" for i in range(n)]
    for i, s in enumerate(servers):
        topo.add_site(f"site{i}", "dc", fabric_latency=0.0)
        topo.add_node(s, f"site{i}")
    for i in range(n):
        for j in range(i + 1, n):
            topo.connect_sites(f"site{i}", f"site{j}", rtt=0.5e-3, bandwidth=25e9)
    topo.add_node(CLIENT, "site0")
    return Setup(topo.name, topo, servers, "datacenter")


def azure(n: int) -> Setup:
    """The WAN builder (Azure P95 inter-region RTTs, 2% jitter); the leader in West Europe."""
    topo = topologies.wan(AZURE[:n])
    servers = sorted(topo.nodes, key=lambda s: [r.lower().replace(" ", "") for r in AZURE].index(s[:-2]))
    topo.add_node(CLIENT, topo.nodes[servers[0]].site)
    return Setup(f"azure-{n}", topo, servers, "internet")


def setups(protocol: str) -> list[Setup]:
    n = 5 if protocol == "raft" else 4
    line = [0.0, 5.0, 15.0, 40.0, 75.0][:n]  # RTTs from the leader: 10, 30, 80, 150 ms
    out = [datacenter(n)]
    if protocol == "raft":
        out.append(datacenter(3))
    out += [own_sites(f"line-{n}", line), azure(n)]
    return out


# -- minimums ----------------------------------------------------------------------------------------


def one_way(sim: Simulation) -> Callable[[str, str], float]:
    def d(a: str, b: str) -> float:
        return 0.0 if a == b else sim.network.route(a, b).latency

    return d


def raft_minimum(d, servers: list[str], leader: str, fsync: float = 0.0) -> float:
    q = len(servers) // 2 + 1
    rtts = sorted(d(leader, f) + d(f, leader) for f in servers if f != leader)
    return (rtts[q - 2] if q >= 2 else 0.0) + fsync


def pbft_minimum(d, members: list[str], primary: str, client: str, fsync: float = 0.0) -> float:
    """See the module docstring; ``fsync``: each replica's pre-prepare, prepare and commit leave
    only once its log record is synced (counted at once by the replica itself)."""
    f = (len(members) - 1) // 3
    backups = [m for m in members if m != primary]

    def sent(t: float, k: str, j: str) -> float:  # k's message of a phase reaches j
        return t if k == j else t + fsync + d(k, j)

    pp = {m: sent(d(client, primary), primary, m) for m in members}
    prep = {j: max(pp[j], sorted(sent(pp[k], k, j) for k in backups)[2 * f - 1]) for j in members}
    com = {j: max(prep[j], sorted(sent(prep[k], k, j) for k in members)[2 * f]) for j in members}
    return sorted(com[j] + d(j, client) for j in members)[f]


# -- runs --------------------------------------------------------------------------------------------


class Times(NullObserver):
    """Observer + request hook: when the leader got each request and when it applied it."""

    def __init__(self, sim: Simulation, leader: str) -> None:
        self.sim, self.leader_id = sim, leader
        self.received: dict[tuple[str, int], float] = {}
        self.applied_at: dict[tuple[str, int], float] = {}

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        if node == self.leader_id:
            self.applied_at.setdefault((command.client, command.seq), self.sim.now)


def client_loop(servers: list[str], ops: int, quorum: int, out: list[float]):
    async def run(rt) -> None:
        kv = KVClient(rt, servers, quorum=quorum, client_id=rt.node_id, timeout=60.0, retry_interval=10.0)
        for i in range(WARMUP + ops):
            start = rt.now()
            await kv.put(f"k{i % 16}", b"v" * 32)
            if i >= WARMUP:
                out.append(rt.now() - start)

    return run


def run_raft(setup: Setup, ops: int, seed: int, fsync: float) -> dict:
    sim = Simulation(setup.topo, seed=seed, trace=False)
    for n in setup.servers:
        sim.storage(n).fsync_latency = fsync
    leader = setup.servers[0]
    base = RaftSettings.for_mode(setup.mode)
    T = base.election_timeout
    preferred = base.replace(election_timeout_max=T)  # times out first, every time
    others = base.replace(election_timeout=2 * T, election_timeout_max=4 * T, tick=base.tick_interval)
    times = Times(sim, leader)

    class Timed(RaftNode):
        def _on_client(self, src: str, req: ClientRequest) -> None:
            if self.rt.node_id == leader:
                times.received.setdefault((req.client, req.seq), sim.now)
            super()._on_client(src, req)

    def app(node: str):
        settings = preferred if node == leader else others
        return lambda rt: Timed(rt, setup.servers, KVStore(), settings, observer=times)

    sim.start({n: app(n) for n in setup.servers})
    while not (sim.runtime(leader).app.is_leader and sim.runtime(leader).app.commit_index > 0):
        sim.run(until=sim.now + 0.05)
        if sim.now > 100 * T:
            raise RuntimeError(f"{setup.name}: {leader} did not become leader")
    client_ms: list[float] = []
    sim.run_until_complete(CLIENT, client_loop(setup.servers, ops, 1, client_ms), timeout=1e5)
    keys = sorted(times.received)[WARMUP:]
    commit = [times.applied_at[k] - times.received[k] for k in keys if k in times.applied_at]
    d = one_way(sim)
    assert all(sim.runtime(s).app.is_leader == (s == leader) for s in setup.servers)
    commit_min = raft_minimum(d, setup.servers, leader, fsync)
    client_min = d(CLIENT, leader) + commit_min + d(leader, CLIENT)
    return {
        "commit": (commit, commit_min),
        "client": (client_ms, client_min),
    }


def run_pbft(setup: Setup, ops: int, seed: int, fsync: float) -> dict:
    sim = Simulation(setup.topo, seed=seed, trace=False)
    for n in setup.servers:
        sim.storage(n).fsync_latency = fsync
    members = setup.servers
    keyring = Keyring.generate(members, seed=seed)
    settings = PBFTSettings.for_mode(setup.mode)
    sim.start(
        lambda rt: PBFTReplica(
            rt, members=members, state_machine=KVStore(), keyring=keyring, settings=settings
        ),
        nodes=members,
    )
    f = (len(members) - 1) // 3
    client_ms: list[float] = []
    sim.run_until_complete(CLIENT, client_loop(members, ops, f + 1, client_ms), timeout=1e5)
    assert all(sim.runtime(s).app.view == 0 for s in members), "a view change happened"
    d = one_way(sim)
    return {"client": (client_ms, pbft_minimum(d, members, members[0], CLIENT, fsync))}


def row(protocol: str, setup: Setup, what: str, samples: list[float], minimum: float) -> dict:
    p50, mean = statistics.median(samples), statistics.fmean(samples)
    return {
        "protocol": protocol,
        "topology": setup.name,
        "latency": what,
        "ops": len(samples),
        "min_ms": round(minimum * 1e3, 3),
        "p50_ms": round(p50 * 1e3, 3),
        "mean_ms": round(mean * 1e3, 3),
        "p99_ms": round(sorted(samples)[int(0.99 * (len(samples) - 1))] * 1e3, 3),
        "p50/min": round(p50 / minimum, 3),
        "mean/min": round(mean / minimum, 3),
        "<=1.2x": "yes" if p50 / minimum <= 1.2 else "NO",
    }


def describe(setup: Setup) -> str:
    sim = Simulation(setup.topo, seed=0, trace=False)
    d = one_way(sim)
    lead = setup.servers[0]
    rtts = ", ".join(f"{(d(lead, s) + d(s, lead)) * 1e3:.2f}" for s in setup.servers[1:])
    return f"{setup.name}: RTT from {lead} (ms): {rtts}; client RTT {2 * d(CLIENT, lead) * 1e3:.3f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fsync-ms", type=float, default=0.0, help="simulated storage sync latency")
    args = parser.parse_args(argv)
    fsync = args.fsync_ms / 1e3
    plan = [("raft", s) for s in setups("raft")] + [("pbft", s) for s in setups("pbft")]
    rows = []
    for protocol, setup in tqdm(plan, desc="topologies", unit="run", disable=None, file=sys.stderr):
        print(f"{protocol}: {describe(setup)}")
        if protocol == "raft":
            result = run_raft(setup, args.ops, args.seed, fsync)
            rows.append(row("Raft", setup, "leader commit", *result["commit"]))
            rows.append(row("Raft", setup, "client (at leader)", *result["client"]))
        else:
            result = run_pbft(setup, args.ops, args.seed, fsync)
            rows.append(row("PBFT", setup, "client (at primary)", *result["client"]))
    report(
        f"Commit latency at low load (1 client, sequential puts) vs minimum, fsync {args.fsync_ms:g} ms",
        rows,
    )


if __name__ == "__main__":
    main()
