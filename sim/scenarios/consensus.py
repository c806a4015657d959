"""Report component: a replicated key-value store (Raft or PBFT) under the scenario's faults.

The ``consensus`` members run a replica, each ``clients`` node runs one client doing random
get/put/cas/delete operations (the campaign workload of :mod:`novacron.sim.dst`). The report
gives throughput, latency, leader changes, and whether the clients' history is linearizable
and every replica applied the same commands: the same checks as the DST campaign, on the
scenario's own topology and faults.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from novacron.consensus import History
from novacron.consensus.kv import KVStore
from novacron.runtime import Runtime
from novacron.sim.dst import Recorder, Workload, checks
from novacron.sim.dst.workload import run_client

from .build import mode_spanning
from .components import ScenarioRun
from .fault_schedule import shade_fault_windows
from .report import ScenarioResult, Section, distribution, new_figure


class TimedRecorder(Recorder):
    """The campaign's recorder, plus when each leadership began (for the timeline)."""

    def __init__(self, now) -> None:
        super().__init__()
        self._now = now
        self.leaderships: list[tuple[float, str, int]] = []

    def leader(self, node: str, term: int) -> None:
        super().leader(node, term)
        self.leaderships.append((self._now(), node, term))


class ConsensusComponent:
    name = "consensus"

    def install(self, run: ScenarioRun) -> None:
        spec = run.scenario.consensus
        if spec is None:
            return
        members = run.nodes.select("consensus.members", spec.members)
        clients = run.nodes.select("consensus.clients", spec.clients)
        if not members or not clients:
            return
        mode = spec.mode or mode_spanning(run.sim.topology, members)
        protocol = spec.protocol if spec.protocol != "auto" else ("raft" if mode == "datacenter" else "pbft")
        if protocol == "pbft" and (len(members) < 4 or (len(members) - 1) % 3):
            run.nodes.problem("consensus.members", f"PBFT needs 3f + 1 >= 4 members, got {len(members)}")
            return
        recorder = TimedRecorder(lambda: run.sim.now)
        history = History()
        workload = Workload(
            clients=len(clients), keys=spec.keys, think=spec.think, op_timeout=spec.op_timeout
        )
        replica = _replica_factory(protocol, mode, members, recorder, run.scenario.seed)
        quorum = (len(members) - 1) // 3 + 1 if protocol == "pbft" else 1
        member_set, client_set = set(members), set(clients)
        until = run.scenario.duration

        def app(rt: Runtime):
            if rt.node_id in member_set:
                return replica(rt)
            if rt.node_id in client_set:
                return rt.spawn(run_client(rt, members, quorum, workload, history, until=until))
            return None

        run.add_app(self.name, app)
        run.data[self.name] = (protocol, mode, members, recorder, history)

    def sections(self, run: ScenarioRun) -> list[Section]:
        if self.name not in run.data:
            return []
        protocol, mode, members, recorder, history = run.data[self.name]
        ops = history.operations
        frame = pd.DataFrame(
            [
                {
                    "invoke_s": op.invoke,
                    "client": op.client,
                    "kind": op.kind,
                    "key": op.key,
                    "status": op.status,
                    "latency_ms": (op.complete - op.invoke) * 1e3 if op.complete is not None else None,
                }
                for op in ops
            ],
            columns=["invoke_s", "client", "kind", "key", "status", "latency_ms"],
        )
        ok = frame[frame["status"] == "ok"]
        violations = [
            *checks.linearizable(ops),
            *checks.election_safety(recorder),
            *checks.state_machine_safety(recorder),
        ]
        latency = distribution(ok["latency_ms"] / 1e3)
        summary = pd.DataFrame(
            [
                {
                    "protocol": protocol,
                    "mode": mode,
                    "members": len(members),
                    "operations": len(frame),
                    "ok": len(ok),
                    "unknown": int((frame["status"] == "info").sum()),
                    "ops_per_s": round(len(ok) / max(run.scenario.duration, 1e-9), 1),
                    "p50_ms": round(latency["p50_ms"], 1),
                    "p99_ms": round(latency["p99_ms"], 1),
                    "leaderships": len(recorder.leaderships),
                    "linearizable_and_safe": not violations,
                }
            ]
        )
        leaders = pd.DataFrame(recorder.leaderships, columns=["time_s", "node", "term"])
        return [
            Section(
                "consensus",
                f"Replicated KV store ({protocol}) under the faults",
                summary,
                plot=plot_consensus,
            ),
            Section("consensus_ops", "Client operations", frame, in_summary=False),
            Section("consensus_leaders", "Leaderships (term or view)", leaders, in_summary=False),
        ]


def _replica_factory(protocol: str, mode: str, members: list[str], observer, seed: int):
    if protocol == "raft":
        from novacron.consensus.raft import RaftNode, RaftSettings

        settings = RaftSettings.for_mode(mode)
        return lambda rt: RaftNode(rt, members, KVStore(), settings, observer=observer)
    from novacron.consensus.pbft import Keyring, PBFTReplica, PBFTSettings

    settings = PBFTSettings.for_mode(mode)
    keyring = Keyring.generate(members, seed=seed)
    return lambda rt: PBFTReplica(
        rt, members=members, state_machine=KVStore(), settings=settings, keyring=keyring, observer=observer
    )


def plot_consensus(result: ScenarioResult) -> Figure | None:
    """Operation latency over time (log scale), leader changes as vertical lines."""
    ops = result.table("consensus_ops")
    if ops.empty:
        return None
    figure, (ax,) = new_figure(height=3.2)
    done = ops[ops["status"] == "ok"]
    ax.scatter(done["invoke_s"], done["latency_ms"], s=4, alpha=0.5, label="ok")
    lost = ops[ops["status"] == "info"]
    if not lost.empty:
        ax.scatter(lost["invoke_s"], [done["latency_ms"].max() or 1] * len(lost), s=12, marker="x",
                   color="red", label="timed out")  # fmt: skip
    leaders = result.table("consensus_leaders")
    for t in leaders["time_s"]:
        ax.axvline(t, color="green", alpha=0.4, linewidth=0.8)
    shade_fault_windows(ax, result)
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel("simulated time (s); green: a new leader")
    ax.set_title("Replicated KV store: client operations over time")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(0, result.scenario.duration)
    return figure
