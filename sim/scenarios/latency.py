"""Report component: message one-way latency per link class, and the network's failure counters.

It installs nothing: the simulated network already samples every delivered message's one-way
delay per link class (``sim.network.latency_samples``: per class a Reservoir whose ``values`` are
a uniform sample of up to 100 000; ``count`` is every delivered message) and counts drops,
duplicates and failed transfers (``sim.network.counters``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .components import ScenarioRun
from .report import LINK_CLASS_COLORS, ScenarioResult, Section, distribution, new_figure, ordered_classes

#: Counters always shown (zero when nothing happened), so the table's shape does not depend on luck.
COUNTERS = ("delivered", "dropped", "dropped_dead", "duplicated", "unknown_destination", "transfers_failed")


class LatencyComponent:
    name = "network"

    def install(self, run: ScenarioRun) -> None:
        """Nothing to install: the network samples latency and counts failures by itself."""

    def sections(self, run: ScenarioRun) -> list[Section]:
        network = run.sim.network
        samples = network.latency_samples
        rows = [
            {"link_class": c, **distribution(samples[c].values), "count": samples[c].seen}
            for c in ordered_classes(samples)
        ]
        latency = pd.DataFrame(rows, columns=["link_class", *distribution([]).keys()])
        counters = dict.fromkeys(COUNTERS, 0) | dict(sorted(network_counters(network).items()))
        counters["transfers_completed"] = len(network.transfer_log)
        failures = pd.DataFrame({"counter": list(counters), "value": list(counters.values())})

        def plot(result: ScenarioResult) -> Figure | None:
            return plot_latency_cdf({c: r.values for c, r in samples.items()})

        return [
            Section("latency", "Message one-way latency by link class", latency, plot=plot),
            Section("failures", "Network counters (messages and transfers)", failures),
        ]


def network_counters(network: Any) -> dict[str, int]:
    """Every counter of the simulated network (hot ones may live outside ``counters``)."""
    stats = getattr(network, "stats", None)
    return dict(stats()) if callable(stats) else dict(network.counters)


def plot_latency_cdf(samples: dict[str, list[float]]) -> Figure | None:
    """Empirical CDF of one-way message latency, one line per link class, log-scaled time."""
    if not any(samples.values()):
        return None
    figure, (ax,) = new_figure()
    for link_class in ordered_classes(samples):
        values = np.sort(np.asarray(samples[link_class]) * 1e3)
        if values.size == 0:
            continue
        # 2000 points draw the same curve as 100 000 at a fraction of the cost.
        picks = np.unique(np.linspace(0, values.size - 1, min(values.size, 2000)).astype(int))
        ax.plot(
            values[picks],
            (picks + 1) / values.size,
            label=f"{link_class} (n={values.size})",
            color=LINK_CLASS_COLORS.get(link_class),
        )
    ax.set_xscale("log")
    ax.set_xlabel("one-way latency (ms)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Message latency CDF by link class")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return figure
