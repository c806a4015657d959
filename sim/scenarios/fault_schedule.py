"""Report component: the scenario's fault schedule, applied through ``sim.faults``, and its log.

The simulator logs each fault as it is applied and healed (``sim.faults.log``), with a full
description (a partition lists every node on both sides). The summary table shows, for each log
entry, which scenario fault it was (``faults[0]``) and a short label written from the scenario;
the simulator's own entries are kept in full in the ``fault_log`` table.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

from .components import ScenarioRun
from .report import ScenarioResult, Section

#: Faults that happen at an instant (no window to heal): drawn as lines, not spans.
INSTANT_FAULTS = ("skew", "restart")


class FaultComponent:
    name = "faults"

    def install(self, run: ScenarioRun) -> None:
        owners: dict[str, list[int]] = defaultdict(list)
        for i, fault in enumerate(run.scenario.faults):
            handle = fault.schedule(run.sim, run.nodes, f"faults[{i}]")
            if handle is not None:
                owners[handle.description].append(i)
        run.data[self.name] = owners

    def sections(self, run: ScenarioRun) -> list[Section]:
        owners: dict[str, list[int]] = run.data.get(self.name, {})
        faults = run.scenario.faults
        rows = []
        for t, entry in run.sim.faults.log:
            event, _, description = entry.partition(" ")
            indexes = owners.get(description, [])
            rows.append(
                {
                    "time_s": t,
                    "event": event,
                    "fault": f"faults[{','.join(map(str, indexes))}]" if indexes else "",
                    "what": " / ".join(label(faults[i]) for i in indexes) or description,
                }
            )
        table = pd.DataFrame(rows, columns=["time_s", "event", "fault", "what"])
        raw = pd.DataFrame(
            [{"time_s": t, "entry": entry} for t, entry in run.sim.faults.log], columns=["time_s", "entry"]
        )
        late = [f"faults[{i}]" for i, f in enumerate(faults) if f.at >= run.scenario.duration]
        note = f"not applied, scheduled after the end: {', '.join(late)}" if late else ""
        return [
            Section("faults", "Fault log", table, note=note),
            Section("fault_log", "Fault log (simulator's descriptions)", raw, in_summary=False),
        ]


def label(fault: Any) -> str:
    """``partition side_a=region:Southeast Asia``: the kind and what differs from the defaults."""
    fields = fault.model_dump(mode="json", exclude={"kind", "at", "duration"}, exclude_defaults=True)
    parts = [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in fields.items()]
    return " ".join([fault.kind, *parts])


def fault_windows(log: list[tuple[float, str]], end: float) -> list[tuple[float, float | None, str]]:
    """``(start, end, description)`` per applied fault; ``end`` is ``None`` for instant faults.

    A fault that never healed lasts until ``end`` (the end of the run).
    """
    windows: list[tuple[float, float | None, str]] = []
    open_at: dict[str, list[int]] = defaultdict(list)
    for t, entry in log:
        event, _, description = entry.partition(" ")
        if event == "apply":
            instant = description.startswith(INSTANT_FAULTS)
            windows.append((t, None if instant else end, description))
            if not instant:
                open_at[description].append(len(windows) - 1)
        elif event == "heal" and open_at[description]:
            i = open_at[description].pop(0)
            windows[i] = (windows[i][0], t, description)
    return windows


def shade_fault_windows(ax: Any, result: ScenarioResult) -> None:
    """Grey spans (and dashed lines for instant faults) behind a time-series plot."""
    if "fault_log" not in result:
        return
    raw = result.table("fault_log")
    log = list(zip(raw["time_s"], raw["entry"], strict=True))
    for start, stop, description in fault_windows(log, result.scenario.duration):
        short = description.split(" ")[0]
        if stop is None:
            ax.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        else:
            ax.axvspan(start, stop, color="grey", alpha=0.15, linewidth=0)
        ax.annotate(
            short,
            xy=(start, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize="x-small",
            color="dimgrey",
            va="top",
        )
