"""The DST campaign of ASS (``novacron dst --protocol ass``): replicas writing through faults.

Every replica runs a :class:`novacron.sync.StateSync` (hybrid-mode settings: pushes to three peers
who pass them on, anti-entropy every two seconds; tombstones reaped after 2 s, every second) and
one writer: random keys of the workload, half of the writes after reading the key, half blind, one
in five a delete. The nemesis strikes during ``duration``; then ``recovery`` seconds of calm. The
checks, on every replica alive at the end:

* **convergence**: they hold the same map (everything was repaired within the recovery), deleted
  keys aside: a tombstone may be forgotten at one replica a moment before another;
* **no lost write**: every acknowledged write is held, or was replaced by a write whose writer
  had read it (a write is acknowledged once durable at its replica, so crashes must not lose it);
* **no resurrection**: a write that a later acknowledged write read (and so replaced) is held by
  no replica.

Leader-aimed faults do not apply (there is no leader) and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from novacron.sim.faults import Nemesis
from novacron.sim.simulation import Simulation
from novacron.sync import StateSync, SyncSettings, VersionVector

from .checks import Verdict, Violation

#: the settings of a campaign's replicas: rumours and anti-entropy both have work to do, and
#: deleted keys are forgotten while the faults strike
MODE = "hybrid"
SETTINGS = replace(SyncSettings.for_mode(MODE), tombstone_grace=2.0, reap_interval=1.0)


@dataclass
class SyncSeedResult(Verdict):
    seed: int
    violations: list[Violation]
    writes: int  # writes started
    acknowledged: int  # ... and acknowledged (durable at their replica)
    keys: int  # keys in the converged map
    most_siblings: int  # the most concurrent values of one key at the end
    faults: list[str]
    replay: str
    reaped: int = 0  # tombstones forgotten, summed over replicas
    byzantine: dict[str, str] = field(default_factory=dict)  # none here (the campaign's interface)

    def figures(self) -> dict:
        return {
            "writes": self.writes,
            "acknowledged": self.acknowledged,
            "keys": self.keys,
            "most_siblings": self.most_siblings,
            "reaped": self.reaped,
        }


def run_sync_seed(config, seed: int, topology) -> SyncSeedResult:
    """One seed of ``config`` (a :class:`~.campaign.CampaignConfig` with protocol "ass")."""
    replicas = [f"r{i}" for i in range(config.nodes or 5)]
    sim = Simulation(topology(replicas, [], config.rtt), seed=seed)
    settings = SETTINGS
    workload = config.workload
    keys = [f"k{i}" for i in range(4 * workload.keys)]  # (more than the KV campaign: keys rest deleted)
    acknowledged: list[tuple[str, tuple[str, int], VersionVector, bytes | None]] = []
    started = {"writes": 0}
    end = config.duration + config.recovery

    async def writer(rt, service: StateSync) -> None:
        n = 0
        while rt.now() < config.duration:
            await rt.sleep(rt.random.expovariate(1.0 / max(workload.think, 1e-3)))
            key = rt.random.choice(keys)
            context = service.get(key).context if rt.random.random() < 0.5 else None
            value = f"{rt.node_id}/{rt.boot_id}/{n}".encode() if rt.random.random() >= 0.2 else None
            n += 1
            started["writes"] += 1
            state = await (
                service.put(key, value, context) if value is not None else service.delete(key, context)
            )
            acknowledged.append(
                (key, (rt.node_id, state.context.get(rt.node_id)), context or VersionVector(), value)
            )

    def app(rt):
        service = StateSync(rt, peers=replicas, settings=settings)
        rt.spawn(writer(rt, service))
        return service

    sim.start(app, nodes=replicas)
    kinds = tuple(k for k in config.faults if k in Nemesis.KNOWN)
    if kinds:
        config.nemesis(kinds, replicas).schedule(sim)
    sim.run(until=end)
    alive = {n: sim.runtime(n).app for n in replicas if sim.runtime(n).alive}
    maps = {n: {k: s.store.get(k) for k in sorted(s.store.keys())} for n, s in alive.items()}
    violations = check_replicas(maps, acknowledged)
    final = next(iter(maps.values()), {})
    return SyncSeedResult(
        seed=seed,
        violations=violations,
        writes=started["writes"],
        acknowledged=len(acknowledged),
        keys=len(final),
        most_siblings=max((len(s.values) for s in final.values()), default=0),
        faults=[text for _, text in sim.faults.log],
        replay=config.replay_command(seed),
        reaped=sum(s.stats.tombstones_reaped for s in alive.values()),
    )


def check_replicas(maps: dict, acknowledged: list) -> list[Violation]:
    """Convergence of the replicas' maps, and no acknowledged write lost (see the module doc)."""
    if not maps:
        return [Violation("convergence", "no replica alive at the end")]
    violations = []
    names = sorted(maps)
    first = maps[names[0]]
    live = {name: {k: v for k, v in m.items() if not v.is_tombstone} for name, m in maps.items()}
    for name in names[1:]:
        if live[name] != live[names[0]]:
            ours, theirs = live[names[0]], live[name]
            differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            violations.append(Violation("convergence", f"{name} and {names[0]} differ on {differ[:5]}"))
    for key, dot, _, value in acknowledged:
        state = first.get(key)
        read_later = any(k == key and context.get(dot[0]) >= dot[1] for k, _, context, _ in acknowledged)
        if state is not None and state.holds(*dot):
            if value not in state.siblings:
                violations.append(Violation("no lost write", f"{key}: write {dot} holds another value"))
            if read_later:
                violations.append(
                    Violation("no resurrection", f"{key}: write {dot} was read and replaced, yet holds")
                )
        elif not read_later and (value is not None or (state is not None and state.values)):
            # (a delete may be gone with its key, forgotten once every replica had it; not
            # if the key holds values it did not replace)
            violations.append(Violation("no lost write", f"{key}: acknowledged write {dot} is gone, unread"))
    return violations
