"""Report component: ASS state synchronisation under the scenario's faults.

Every ``sync.replicas`` node runs a :class:`novacron.sync.StateSync` replica and writes random keys
(:class:`~.model.SyncSpec`). Each replica's change notifications tell the harness when a replica
first *covers* a write (holds it, or a later write that replaced it): a write is replicated when
every replica covers it. The report gives the replication delay of each write (from its
acknowledgement at the writer to the last replica), and whether the replicas hold the same map
at the end: partitions show as delays as long as the partition, crashes as a replica that
catches up after its restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from novacron.runtime import Runtime
from novacron.sync import StateSync, SyncSettings, VersionSet

from .build import mode_spanning
from .components import ScenarioRun
from .fault_schedule import shade_fault_windows
from .report import ScenarioResult, Section, distribution, new_figure

WRITE_COLUMNS = ["time_s", "writer", "key", "read_first", "replicated_s", "delay_s"]


@dataclass
class _Write:
    time: float
    writer: str
    key: str
    dot: tuple[str, int]
    read_first: bool
    covered: dict[str, float] = field(default_factory=dict)  # replica -> when it first covered it


@dataclass
class _Tracker:
    """Which replica covers which write, from the replicas' change notifications."""

    replicas: list[str]
    writes: list[_Write] = field(default_factory=list)
    pending: dict[str, list[_Write]] = field(default_factory=dict)  # by key, not yet everywhere

    def wrote(self, write: _Write) -> None:
        write.covered[write.writer] = write.time
        self.writes.append(write)
        self.pending.setdefault(write.key, []).append(write)

    def changed(self, replica: str, key: str, state: VersionSet, now: float) -> None:
        waiting = self.pending.get(key, [])
        for write in waiting:
            if replica not in write.covered and state.covers(*write.dot):
                write.covered[replica] = now
        self.pending[key] = [w for w in waiting if len(w.covered) < len(self.replicas)]


class SyncComponent:
    name = "sync"

    def install(self, run: ScenarioRun) -> None:
        spec = run.scenario.sync
        if spec is None:
            return
        replicas = run.nodes.select("sync.replicas", spec.replicas)
        if len(replicas) < 2:
            if replicas:
                run.nodes.problem("sync.replicas", f"state sync needs >= 2 replicas, got {len(replicas)}")
            return
        mode = spec.mode or mode_spanning(run.sim.topology, replicas)
        settings = SyncSettings.for_mode(mode)
        stop = spec.stop if spec.stop is not None else 0.75 * run.scenario.duration
        tracker = _Tracker(replicas)
        services: dict[str, StateSync] = {}
        sim = run.sim
        keys = [f"key-{i:03d}" for i in range(spec.keys)]
        mean_gap = spec.every * len(replicas)  # each replica's share of the cluster-wide rate

        async def writer(rt: Runtime, service: StateSync) -> None:
            while True:
                await rt.sleep(rt.random.expovariate(1.0 / mean_gap))
                if sim.now >= stop:
                    return
                key = rt.random.choice(keys)
                read_first = rt.random.random() < spec.read_first
                context = service.get(key).context if read_first else None
                state = await service.put(key, rt.random.randbytes(int(spec.value_size)), context)
                dot = (rt.node_id, state.context.get(rt.node_id))
                tracker.wrote(_Write(sim.now, rt.node_id, key, dot, read_first))

        replica_set = set(replicas)

        def app(rt: Runtime):
            if rt.node_id not in replica_set:
                return None
            service = services[rt.node_id] = StateSync(rt, peers=replicas, settings=settings)
            node = rt.node_id
            service.subscribe(lambda key, state: tracker.changed(node, key, state, sim.now))
            rt.spawn(writer(rt, service))
            return service

        run.add_app(self.name, app)
        run.data[self.name] = (mode, replicas, stop, tracker, services)

    def sections(self, run: ScenarioRun) -> list[Section]:
        if self.name not in run.data:
            return []
        mode, replicas, stop, tracker, services = run.data[self.name]
        n = len(replicas)
        frame = pd.DataFrame(
            [
                {
                    "time_s": w.time,
                    "writer": w.writer,
                    "key": w.key,
                    "read_first": w.read_first,
                    "replicated_s": max(w.covered.values()) if len(w.covered) == n else None,
                    "delay_s": max(w.covered.values()) - w.time if len(w.covered) == n else None,
                }
                for w in tracker.writes
            ],
            columns=WRITE_COLUMNS,
        )
        done = frame["delay_s"].dropna()
        delay = distribution(done, scale=1.0, unit="s")
        maps = [
            {key: services[r].store.get(key) for key in sorted(services[r].store.keys())}
            for r in replicas
            if r in services
        ]
        final = maps[0] if maps else {}
        summary = pd.DataFrame(
            [
                {
                    "mode": mode,
                    "replicas": n,
                    "writes": len(frame),
                    "replicated": len(done),
                    "p50_s": round(delay["p50_s"], 3),
                    "p99_s": round(delay["p99_s"], 3),
                    "max_s": round(float(done.max()), 3) if len(done) else None,
                    "writes_stop_s": stop,
                    "converged_at_end": all(m == final for m in maps),
                    "keys": len(final),
                    "most_siblings": max((len(s.values) for s in final.values()), default=0),
                }
            ]
        )
        return [
            Section(
                "sync", "State synchronisation (ASS): replication delay per write", summary, plot=plot_sync
            ),
            Section("sync_writes", "Writes and when the last replica covered them", frame, in_summary=False),
        ]


def plot_sync(result: ScenarioResult) -> Figure | None:
    """Each write's replication delay at the time it was written (log scale), faults shaded."""
    writes = result.table("sync_writes")
    if writes.empty:
        return None
    figure, (ax,) = new_figure(height=3.2)
    done = writes.dropna(subset=["delay_s"])
    for read_first, label in ((True, "read, then wrote"), (False, "blind write")):
        part = done[done["read_first"] == read_first]
        ax.scatter(part["time_s"], part["delay_s"], s=6, alpha=0.6, label=label)
    shade_fault_windows(ax, result)
    ax.set_yscale("log")
    ax.set_ylabel("until every replica has it (s)")
    ax.set_xlabel("simulated time of the write (s)")
    ax.set_title("State synchronisation: replication delay per write")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(0, result.scenario.duration)
    return figure
