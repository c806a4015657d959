"""Report component: the bulk-transfer workload (drivers on every node) and its goodput.

Each ``workload`` entry of the scenario becomes a :class:`~.bulk_driver.TransferPlan` run by a
:class:`~.bulk_driver.BulkTransferDriver` on every node that has a peer at the entry's distance.
The entry's ``every`` is a cluster-wide mean, so each source node's mean gap is
``every * number_of_sources``.

Completed transfers come from the network's own log (``sim.network.transfer_log``); starts and
failures from the drivers' observer. A transfer whose *sender* crashed is neither completed nor
seen failing (its coroutine died with the node): it counts as ``unfinished``, as do transfers
still running when the scenario ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from novacron.runtime import Runtime, TransferError
from novacron.sim import Simulation

from .bulk_driver import BulkTransferDriver, TransferPlan
from .components import ScenarioRun
from .report import LINK_CLASS_COLORS, ScenarioResult, Section, new_figure, ordered_classes

TAG_PREFIX = "bulk/"
GOODPUT_COLUMNS = [
    "link_class",
    "started",
    "completed",
    "failed",
    "unfinished",
    "total_bytes",
    "mean_gbps",
    "p50_gbps",
    "mean_duration_s",
]
TRANSFER_COLUMNS = [
    "started",
    "finished",
    "workload",
    "src",
    "dst",
    "link_class",
    "nbytes",
    "streams",
    "congestion",
    "duration_s",
    "goodput_gbps",
]


@dataclass
class TransferLedger:
    """What the drivers report, with the simulation time and link class added by the harness."""

    sim: Simulation
    starts: list[tuple[float, str, str, str, int]] = field(default_factory=list)
    failures: list[tuple[float, str, str, str, str]] = field(default_factory=list)

    def started(self, plan: TransferPlan, src: str, dst: str, nbytes: int, streams: int) -> None:
        self.starts.append((self.sim.now, plan.tag, src, dst, nbytes))

    def failed(self, plan: TransferPlan, src: str, dst: str, error: TransferError) -> None:
        self.failures.append((self.sim.now, plan.tag, src, dst, str(error)))


class BulkComponent:
    name = "bulk"

    def install(self, run: ScenarioRun) -> None:
        plans = []
        for i, work in enumerate(run.scenario.workload):
            sources = run.nodes.sources_for(work.link_class)
            if not sources:
                run.nodes.problem(
                    f"workload[{i}].link_class",
                    f"no pair of nodes in this topology is {work.link_class} ({run.sim.topology.summary()})",
                )
                continue
            low, high = work.size_range
            plans.append(
                TransferPlan(
                    tag=f"{TAG_PREFIX}{work.name}",
                    scope=work.link_class,
                    mean_gap=work.every * len(sources),
                    min_bytes=low,
                    max_bytes=high,
                    streams=work.streams,
                    congestion=work.congestion,
                    start=work.start,
                )
            )
        if not plans:
            return
        ledger = run.data[self.name] = TransferLedger(run.sim)

        def driver(rt: Runtime) -> BulkTransferDriver:
            return BulkTransferDriver(rt, plans, observer=ledger)

        run.add_app(self.name, driver)

    def sections(self, run: ScenarioRun) -> list[Section]:
        ledger: TransferLedger | None = run.data.get(self.name)
        if ledger is None:
            return []
        topo = run.sim.topology
        workloads = run.scenario.workload
        reports = [r for r in run.sim.network.transfer_log if r.tag.startswith(TAG_PREFIX)]
        transfers = pd.DataFrame(
            [
                (
                    r.started,
                    r.finished,
                    r.tag.removeprefix(TAG_PREFIX),
                    r.src,
                    r.dst,
                    topo.link_class(r.src, r.dst),
                    r.nbytes,
                    r.streams,
                    r.congestion,
                    r.duration,
                    r.goodput_bps / 1e9,
                )
                for r in reports
            ],
            columns=TRANSFER_COLUMNS,
        )
        attempts = pd.DataFrame(
            [
                (tag.removeprefix(TAG_PREFIX), topo.link_class(s, d), "started")
                for _, tag, s, d, _ in ledger.starts
            ]
            + [
                (tag.removeprefix(TAG_PREFIX), topo.link_class(s, d), "failed")
                for _, tag, s, d, _ in ledger.failures
            ],
            columns=["workload", "link_class", "outcome"],
        )
        by_class = goodput_table(transfers, attempts, "link_class", ordered_classes)
        by_workload = goodput_table(
            transfers, attempts, "workload", lambda names: [w.name for w in workloads]
        )
        several = by_workload["link_class"].duplicated().any()  # else it repeats the table above
        note = (
            "failed: seen failing by a live sender; "
            "unfinished: still running at the end, or lost with a crashed sender"
        )
        return [
            Section("goodput", "Bulk-transfer goodput by link class", by_class, plot=plot_goodput, note=note),
            Section(
                "goodput_by_workload", "Bulk-transfer goodput by workload", by_workload, in_summary=several
            ),
            Section("transfers", "Completed bulk transfers", transfers, in_summary=False),
        ]


def goodput_table(
    transfers: pd.DataFrame,
    attempts: pd.DataFrame,
    key: str,
    order: Callable[[Iterable[str]], list[str]],
) -> pd.DataFrame:
    """One row per value of ``key`` (link class or workload): counts, bytes, goodput, duration."""
    rows = []
    for value in order([*attempts[key], *transfers[key]]):
        done = transfers[transfers[key] == value]
        mine = attempts[attempts[key] == value]
        n_started, n_failed = (
            int((mine["outcome"] == "started").sum()),
            int((mine["outcome"] == "failed").sum()),
        )
        row: dict[str, object] = {"workload": value} if key == "workload" else {}
        classes = ordered_classes([*mine["link_class"], *done["link_class"]])
        row |= {
            "link_class": ",".join(classes),
            "started": n_started,
            "completed": len(done),
            "failed": n_failed,
            "unfinished": max(0, n_started - len(done) - n_failed),
            "total_bytes": int(done["nbytes"].sum()),
            "mean_gbps": float(done["goodput_gbps"].mean()) if len(done) else float("nan"),
            "p50_gbps": float(done["goodput_gbps"].median()) if len(done) else float("nan"),
            "mean_duration_s": float(done["duration_s"].mean()) if len(done) else float("nan"),
        }
        rows.append(row)
    return pd.DataFrame(rows, columns=(["workload"] if key == "workload" else []) + GOODPUT_COLUMNS)


def plot_goodput(result: ScenarioResult) -> Figure | None:
    """Mean goodput per link class (bars) over every completed transfer (dots)."""
    transfers = result.table("transfers")
    if transfers.empty:
        return None
    figure, (ax,) = new_figure()
    classes = ordered_classes(transfers["link_class"])
    for x, link_class in enumerate(classes):
        values = transfers.loc[transfers["link_class"] == link_class, "goodput_gbps"].to_numpy()
        color = LINK_CLASS_COLORS.get(link_class)
        ax.bar(x, values.mean(), color=color, alpha=0.35, width=0.6)
        spread = np.linspace(-0.2, 0.2, values.size) if values.size > 1 else np.zeros(values.size)
        ax.scatter(x + spread, values, color=color, s=10, zorder=3)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylabel("goodput (Gbit/s)")
    ax.set_title("Bulk-transfer goodput by link class (bar: mean, dots: transfers)")
    ax.grid(True, axis="y", alpha=0.3)
    return figure
