"""Report component: heartbeats among all nodes, their RTTs, and RTT over time around the faults.

Every node runs :class:`novacron.monitoring.HeartbeatService`; its ``on_rtt`` hook hands each
sample to the harness, which stamps it with simulated time. Gaps in the timeline are the story:
a partitioned region stops answering, a crashed node goes silent until it restarts, so the plot
shades the fault windows behind the curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from novacron.monitoring import HeartbeatService
from novacron.runtime import Runtime

from .components import ScenarioRun
from .fault_schedule import shade_fault_windows
from .report import LINK_CLASS_COLORS, ScenarioResult, Section, distribution, new_figure, ordered_classes

SAMPLE_COLUMNS = ["time_s", "node", "peer", "link_class", "rtt_ms"]


class HeartbeatComponent:
    name = "heartbeat"

    def install(self, run: ScenarioRun) -> None:
        spec = run.scenario.heartbeat
        if spec is None:
            return
        sim = run.sim
        samples: list[tuple[float, str, str, float]] = run.data.setdefault(self.name, [])

        def service(rt: Runtime) -> HeartbeatService:
            node = rt.node_id

            def record(peer: str, rtt: float) -> None:
                samples.append((sim.now, node, peer, rtt))

            return HeartbeatService(
                rt, interval=spec.interval, suspect_after=spec.suspect_after, on_rtt=record
            )

        run.add_app(self.name, service)

    def sections(self, run: ScenarioRun) -> list[Section]:
        if self.name not in run.data:
            return []
        topo = run.sim.topology
        classes: dict[tuple[str, str], str] = {}
        rows = []
        for t, node, peer, rtt in run.data[self.name]:
            link_class = classes.get((node, peer))
            if link_class is None:
                link_class = classes[(node, peer)] = topo.link_class(node, peer)
            rows.append((t, node, peer, link_class, rtt * 1e3))
        raw = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
        summary_rows = [
            {"link_class": c, **distribution(raw.loc[raw["link_class"] == c, "rtt_ms"], scale=1.0)}
            for c in ordered_classes(raw["link_class"])
        ]
        summary = pd.DataFrame(summary_rows, columns=["link_class", *distribution([]).keys()])
        interval = run.scenario.heartbeat.interval if run.scenario.heartbeat else 1.0
        return [
            Section("heartbeat", "Heartbeat round-trip time by link class", summary, plot=_plotter(interval)),
            Section("heartbeat_samples", "Heartbeat RTT samples", raw, in_summary=False),
        ]


def _plotter(interval: float):
    def plot(result: ScenarioResult) -> Figure | None:
        return plot_heartbeat_timeline(result, interval)

    return plot


def plot_heartbeat_timeline(result: ScenarioResult, interval: float) -> Figure | None:
    """Mean RTT per link class (top) and acknowledged heartbeats per second (bottom) over time."""
    raw = result.table("heartbeat_samples")
    if raw.empty:
        return None
    duration = result.scenario.duration
    width = max(interval, duration / 200)  # about 200 bins, never finer than one heartbeat
    edges = np.arange(0.0, duration + width, width)
    centers = (edges[:-1] + edges[1:]) / 2
    figure, (rtt_ax, rate_ax) = new_figure(rows=2, height=3.2)
    for link_class in ordered_classes(raw["link_class"]):
        part = raw[raw["link_class"] == link_class]
        sums, _ = np.histogram(part["time_s"], bins=edges, weights=part["rtt_ms"])
        counts, _ = np.histogram(part["time_s"], bins=edges)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        color = LINK_CLASS_COLORS.get(link_class)
        rtt_ax.plot(centers, mean, label=link_class, color=color)
        rate_ax.plot(centers, counts / width, label=link_class, color=color)
    for ax in (rtt_ax, rate_ax):
        shade_fault_windows(ax, result)
        ax.grid(True, alpha=0.3)
    rtt_ax.set_yscale("log")
    rtt_ax.set_ylabel("mean RTT (ms)")
    rtt_ax.set_title("Heartbeats over time (shaded: fault windows)")
    rtt_ax.legend(loc="center right", fontsize="small")
    rate_ax.set_ylabel("acks per second")
    rate_ax.set_xlabel("simulated time (s)")
    rate_ax.set_xlim(0, duration)
    return figure
