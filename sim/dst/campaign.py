"""Deterministic simulation testing: random fault schedules against a replicated KV store.

One *seed* is one run: a cluster of replicas and a few clients in the
simulator, a seeded nemesis injecting faults (partitions, one-way
partitions, crashes with loss of unsynced data, loss/duplication/reorder
bursts, clock skew; for PBFT also up to f Byzantine replicas) for
``duration`` simulated seconds, then ``recovery`` seconds of calm. Then the
checks: linearizability of the clients' history, election safety, state
machine safety, log matching (Raft), identical state on replicas that
applied the same prefix, and progress after the faults healed.

Everything in a run derives from its seed, so a failing seed is a bug report
that replays exactly: :meth:`CampaignConfig.replay_command` prints how.
"""

from __future__ import annotations

import functools
import random
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from novacron.consensus import History
from novacron.sim.faults import Nemesis
from novacron.sim.network.topology import Topology
from novacron.sim.seeds import derive_seed
from novacron.sim.simulation import Simulation

from . import checks
from .checks import Verdict, Violation
from .hosting_target import VMSeedResult, run_vm_seed
from .recorder import Recorder
from .sync_target import SyncSeedResult, run_sync_seed
from .targets import BROKEN_RAFT, BYZANTINE_KINDS, make_target
from .workload import Workload, run_client

#: faults aimed at whoever leads at that moment (Jepsen's favourites: most bugs hide in
#: leader changes, and a random node is the leader only 1/n of the time)
LEADER_FAULTS = ("crash_leader", "isolate_leader")
FAULT_KINDS = ("partition", "one_way", "crash", "loss", "duplicate", "reorder", "skew", *LEADER_FAULTS)
PROTOCOLS = ("raft", "pbft", "ass", "vm")


@dataclass(frozen=True)
class CampaignConfig:
    """What every seed of a campaign runs. Times are simulated seconds."""

    protocol: str = "raft"  # raft | pbft | ass (state sync: .sync_target) | vm (hosting: .hosting_target)
    nodes: int | None = None  # default: 5 for Raft and ASS, 4 (f = 1) for PBFT
    faults: tuple[str, ...] = FAULT_KINDS
    byzantine: tuple[str, ...] = BYZANTINE_KINDS  # PBFT only; up to f replicas per seed
    duration: float = 15.0
    recovery: float = 8.0
    mean_fault_interval: float = 1.5
    max_fault_duration: float = 3.0
    workload: Workload = field(default_factory=Workload)
    broken: str = ""  # Raft only: a deliberately broken variant (BROKEN_RAFT), to show the checks bite
    auth: str = "ed25519"  # PBFT only
    rtt: float = 0.004  # between replicas (and clients); jitter is a quarter of it

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}: choose {', '.join(PROTOCOLS)}")
        if self.nodes is not None and self.protocol in ("ass", "vm") and self.nodes < 2:
            raise ValueError(f"{self.protocol} needs >= 2 nodes, got {self.nodes}")
        unknown = [k for k in self.faults if k not in Nemesis.KNOWN and k not in LEADER_FAULTS]
        if unknown:
            known = ", ".join((*Nemesis.KNOWN, *LEADER_FAULTS))
            raise ValueError(f"unknown fault kinds {unknown}; known: {known}")
        bad = [k for k in self.byzantine if k not in BYZANTINE_KINDS]
        if bad:
            raise ValueError(f"unknown Byzantine behaviours {bad}; known: {', '.join(BYZANTINE_KINDS)}")
        if self.broken and self.protocol != "raft":
            raise ValueError("the broken variants exist for Raft only")
        if self.broken and self.broken not in BROKEN_RAFT:
            raise ValueError(f"unknown broken variant {self.broken!r}; known: {', '.join(BROKEN_RAFT)}")
        if self.duration <= 0 or self.recovery <= 0:
            raise ValueError("duration and recovery must be > 0")

    def nemesis(self, kinds: tuple[str, ...], targets: list[str]) -> Nemesis:
        """The seeded random faults of a run: ``kinds`` striking ``targets`` from 1 s until
        ``duration``, when everything heals."""
        return Nemesis(
            kinds=kinds,
            mean_interval=self.mean_fault_interval,
            max_duration=self.max_fault_duration,
            start=1.0,
            stop=self.duration,
            targets=tuple(targets),
        )

    def target(self):
        options = {} if self.nodes is None else {"nodes": self.nodes}
        if self.protocol == "raft":
            return make_target("raft", broken=self.broken, **options)
        return make_target("pbft", auth=self.auth, **options)

    def replay_command(self, seed: int) -> str:
        """The command line that runs exactly this seed again."""
        args = ["novacron", "dst", "--protocol", self.protocol, "--seeds", f"{seed}:{seed + 1}"]
        args += ["--faults", ",".join(self.faults) or "none"]
        if self.nodes is not None:
            args += ["--nodes", str(self.nodes)]
        if self.protocol == "pbft":
            args += ["--byzantine", ",".join(self.byzantine) or "none", "--auth", self.auth]
        if self.broken:
            args += ["--broken", self.broken]
        defaults = CampaignConfig()
        for name in ("duration", "recovery"):
            if getattr(self, name) != getattr(defaults, name):
                args += [f"--{name}", f"{getattr(self, name):g}"]
        if self.workload != defaults.workload:
            args += ["--clients", str(self.workload.clients), "--keys", str(self.workload.keys)]
        return shlex.join(args)


@dataclass
class SeedResult(Verdict):
    seed: int
    violations: list[Violation]
    operations: int
    completed: int  # operations that completed ok
    unknown: int  # info: timed out
    applied: int  # commands applied, summed over replicas
    leaders: int  # terms / views that had a leader
    faults: list[str]
    byzantine: dict[str, str]
    replay: str

    def figures(self) -> dict:
        return {
            "operations": self.operations,
            "completed": self.completed,
            "unknown": self.unknown,
            "applied": self.applied,
            "leaders": self.leaders,
        }

    def row(self) -> dict:
        return {**super().row(), "byzantine": ",".join(f"{n}={k}" for n, k in sorted(self.byzantine.items()))}


def _topology(replicas: list[str], clients: list[str], rtt: float) -> Topology:
    """Every node in its own site, all pairs linked with ``rtt`` and some jitter (so
    messages on different links reorder)."""
    topo = Topology("dst")
    nodes = replicas + clients
    for node in nodes:
        topo.add_site(f"s-{node}", "dst")
        topo.add_node(node, f"s-{node}")
    for i, a in enumerate(nodes):
        for b in nodes[i + 1 :]:
            topo.connect_sites(f"s-{a}", f"s-{b}", rtt=rtt, bandwidth=10e9, jitter=rtt / 4)
    return topo


def _schedule_leader_faults(sim: Simulation, target, members, config: CampaignConfig, kinds) -> None:
    """Strike the leader of the moment: at seeded times, crash it (it restarts later) or
    cut it off from the other replicas (clients still reach it, so it may take writes it
    can never commit)."""
    rng = random.Random(derive_seed(sim.seed, "dst:leader-faults"))
    share = len(kinds) / max(1, len(config.faults))  # their part of the overall fault rate
    t = 1.0
    while True:
        t += rng.expovariate(share / config.mean_fault_interval)
        if t >= config.duration:
            return
        kind = rng.choice(kinds)
        duration = min(rng.uniform(0.1, config.max_fault_duration), config.duration - t)
        sim.call_at(t, _strike_leader, sim, target, members, kind, duration)


def _strike_leader(sim: Simulation, target, members, kind: str, duration: float) -> None:
    alive = {n: sim.runtime(n).app for n in members if sim.runtime(n).alive}
    leader = target.leader(alive)
    if leader is None:
        return
    if kind == "crash_leader":
        sim.faults.crash(leader, restart_after=duration)
    else:
        sim.faults.partition([leader], [n for n in members if n != leader], duration=duration)


def run_seed(config: CampaignConfig, seed: int) -> SeedResult | SyncSeedResult | VMSeedResult:
    """One deterministic run; returns what the checks found."""
    if config.protocol == "ass":
        return run_sync_seed(config, seed, _topology)
    if config.protocol == "vm":
        return run_vm_seed(config, seed, _topology)
    target = config.target()
    members = target.members()
    byzantine_kinds = config.byzantine if config.protocol == "pbft" else ()
    rng = random.Random(derive_seed(seed, "dst:byzantine"))
    target.byzantine = target.choose_byzantine(rng, byzantine_kinds)
    workload = config.workload
    clients = [f"c{i}" for i in range(workload.clients)]
    sim = Simulation(_topology(members, clients, config.rtt), seed=seed)
    recorder = Recorder()
    recorder.ignore = frozenset(target.byzantine)
    sim.start(target.app(recorder), nodes=members)
    random_kinds = tuple(k for k in config.faults if k not in LEADER_FAULTS)
    leader_kinds = tuple(k for k in config.faults if k in LEADER_FAULTS)
    if leader_kinds:
        _schedule_leader_faults(sim, target, members, config, leader_kinds)
    if random_kinds:
        config.nemesis(random_kinds, members).schedule(sim)
    history = History()
    end = config.duration + config.recovery
    for client in clients:
        rt = sim.runtime(client)
        rt.spawn(run_client(rt, members, target.quorum, workload, history, until=end))
    # Run to the end (letting the last operations finish or time out), but stop at the first
    # replicas' disagreement: it is the bug report, and a diverged cluster only gets slower.
    stop = end + workload.op_timeout + 1.0
    while sim.now < stop and recorder.conflict is None:
        sim.run(until=min(stop, sim.now + 0.5))
    stopped_early = recorder.conflict is not None

    correct = [n for n in members if n not in target.byzantine]
    replicas = {n: sim.runtime(n).app for n in correct if sim.runtime(n).alive}
    for replica in replicas.values():
        replica.stop()
    ops = history.operations
    violations = [
        *checks.linearizable(ops),
        *checks.election_safety(recorder),
        *checks.state_machine_safety(recorder, ignore=frozenset(target.byzantine)),
        *checks.log_matching(target.logs(replicas)),
        *checks.same_state({n: target.state(r) for n, r in replicas.items()}),
    ]
    if not stopped_early:  # progress is judged on complete runs only
        violations += checks.progress(ops, healed_at=config.duration, within=config.recovery)
    return SeedResult(
        seed=seed,
        violations=violations,
        operations=len(ops),
        completed=sum(op.status == "ok" for op in ops),
        unknown=sum(op.status == "info" for op in ops),
        applied=recorder.applies,
        leaders=len(recorder.leaders),
        faults=[text for _, text in sim.faults.log],
        byzantine=dict(target.byzantine),
        replay=config.replay_command(seed),
    )


def run_campaign(
    config: CampaignConfig,
    seeds: Iterable[int],
    *,
    progress: bool = False,
    workers: int | None = 1,
    ray: str | None = None,
):
    """Run every seed; returns a pandas DataFrame (one row per seed, in the seeds' order) and the
    failures.

    ``workers``: local processes (1: in this process; None: one per core); ``ray``: a Ray
    cluster's address instead (:mod:`novacron.sim.sweep`). Seeds are independent runs, so the
    table is the same for any of these. A seed whose run raises is a failure with an
    ``exception`` violation (a crash in the protocol or the simulator is a bug the campaign found),
    and the other seeds still run.
    """
    import pandas as pd

    from novacron.sim.sweep import run_points

    outcomes = run_points(
        functools.partial(run_seed, config),
        [{"seed": seed} for seed in seeds],
        workers=workers,
        ray=ray,
        progress=progress,
        desc=f"dst {config.protocol}",
    )
    results = [o.value if o.ok else _crashed(config, o.point["seed"], o.error or "") for o in outcomes]
    return pd.DataFrame([r.row() for r in results]), [r for r in results if not r.ok]


def _crashed(config: CampaignConfig, seed: int, error: str) -> SeedResult | SyncSeedResult | VMSeedResult:
    if config.protocol == "vm":
        return VMSeedResult(seed, [Violation("exception", error)], config.replay_command(seed))
    if config.protocol == "ass":
        return SyncSeedResult(
            seed, [Violation("exception", error)], 0, 0, 0, 0, [], config.replay_command(seed)
        )
    return SeedResult(
        seed=seed,
        violations=[Violation("exception", error)],
        operations=0,
        completed=0,
        unknown=0,
        applied=0,
        leaders=0,
        faults=[],
        byzantine={},
        replay=config.replay_command(seed),
    )
