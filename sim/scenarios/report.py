"""The result of a scenario run: named sections (a table and maybe a plot each), a summary, files.

Results are pandas DataFrames (ARCHITECTURE.md, "Research surface"), one per :class:`Section`,
so a notebook can pick them up directly; :meth:`ScenarioResult.save` writes each as CSV (to read)
and Parquet (to load back with its types), renders the plots as PNG, and saves the effective
scenario as YAML next to them, so a result directory is enough to replay its run exactly.

Plots use matplotlib's object API on the Agg canvas (``Figure`` + ``savefig``), never pyplot: no
global backend is switched, no window opens, and nothing leaks between runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .loading import scenario_to_yaml
from .model import LINK_CLASSES, Scenario

#: One colour per link class, the same in every plot.
LINK_CLASS_COLORS = {"intra-site": "tab:green", "intra-region": "tab:blue", "inter-region": "tab:red"}


@dataclass
class Section:
    """One part of the report.

    ``table`` is saved as ``<name>.csv`` and ``<name>.parquet``; ``plot`` (given the whole result,
    so it can overlay other sections such as the fault windows) returns a figure saved as
    ``<name>.png``, or ``None`` when there is nothing to draw. Sections with ``in_summary=False``
    (raw samples, say) are saved but not printed.
    """

    name: str
    title: str
    table: pd.DataFrame
    plot: Callable[[ScenarioResult], Figure | None] | None = None
    in_summary: bool = True
    note: str = ""


@dataclass
class ScenarioResult:
    """Everything a run produced; the tables are deterministic for a seed, ``wall_seconds`` is not."""

    scenario: Scenario
    topology: str
    trace_hash: str
    trace_events: int
    wall_seconds: float
    sections: list[Section] = field(default_factory=list)

    # -- access ---------------------------------------------------------------------------------
    def section(self, name: str) -> Section:
        for section in self.sections:
            if section.name == name:
                return section
        raise KeyError(f"no section {name!r} (sections: {', '.join(s.name for s in self.sections)})")

    def table(self, name: str) -> pd.DataFrame:
        return self.section(name).table

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        return {s.name: s.table for s in self.sections}

    def __contains__(self, name: str) -> bool:
        return any(s.name == name for s in self.sections)

    # -- text -----------------------------------------------------------------------------------
    def header(self) -> str:
        s = self.scenario
        return (
            f"scenario {s.name}: {self.topology}\n"
            f"seed {s.seed}, {s.duration:g} simulated s in {self.wall_seconds:.2f} s wall-clock, "
            f"{self.trace_events} trace events\n"
            f"trace hash {self.trace_hash}"
        )

    def summary(self) -> str:
        """The header and every summary section's table, as plain text."""
        parts = [self.header()]
        for section in self.sections:
            if not section.in_summary:
                continue
            text = section.table.to_string(index=False) if len(section.table) else "(none)"
            note = f"\n{section.note}" if section.note else ""
            parts.append(f"== {section.title} ==\n{text}{note}")
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the run's identity and every table as records (NaN becomes null)."""
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "duration": self.scenario.duration,
            "topology": self.topology,
            "trace_hash": self.trace_hash,
            "trace_events": self.trace_events,
            "wall_seconds": self.wall_seconds,
            "sections": {
                s.name: json.loads(s.table.to_json(orient="records")) for s in self.sections if s.in_summary
            },
        }

    def row(self) -> dict[str, Any]:
        """The run's headline figures as one flat row (for a table over seeds): the seed, the trace
        hash, and every number or flag of the summary tables, named ``section.column``, or
        ``section[label].column`` for a table with one row per label (its first column)."""
        row: dict[str, Any] = {"seed": self.scenario.seed, "trace_hash": self.trace_hash}
        for section in self.sections:
            table = section.table
            if not section.in_summary or table.empty:
                continue
            labelled = len(table) > 1 and not pd.api.types.is_numeric_dtype(table.iloc[:, 0])
            if len(table) > 1 and not labelled:
                continue  # a list (of faults, say), not figures
            for _, record in table.iterrows():
                prefix = f"{section.name}[{record.iloc[0]}]" if labelled else section.name
                for column, value in record.items():
                    if isinstance(value, bool | int | float | np.bool_ | np.integer | np.floating):
                        row[f"{prefix}.{column}"] = value.item() if isinstance(value, np.generic) else value
        return row

    # -- files ----------------------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> list[Path]:
        """Write every table (CSV + Parquet), every plot (PNG), the summary and the scenario.

        Returns the paths written, in a stable order. Existing files of the same name are
        replaced; other files in ``out_dir`` are left alone.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for section in self.sections:
            csv_path, parquet_path = out / f"{section.name}.csv", out / f"{section.name}.parquet"
            section.table.to_csv(csv_path, index=False)
            section.table.to_parquet(parquet_path, index=False)
            written += [csv_path, parquet_path]
            if section.plot is not None:
                figure = section.plot(self)
                if figure is not None:
                    png = out / f"{section.name}.png"
                    save_figure(figure, png)
                    written.append(png)
        text_files = {
            "summary.txt": self.summary() + "\n",
            "scenario.yaml": scenario_to_yaml(self.scenario),
            "run.json": json.dumps({k: v for k, v in self.to_dict().items() if k != "sections"}, indent=2)
            + "\n",
        }
        for name, text in text_files.items():
            path = out / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def new_figure(*, rows: int = 1, height: float = 4.0) -> tuple[Figure, list[Any]]:
    """A figure on the Agg canvas with ``rows`` stacked axes sharing the x axis."""
    figure = Figure(figsize=(8.0, height * rows))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    # Fixed margins: constrained layout would cost more than drawing the data.
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.1 / rows + 0.03, top=1 - 0.08 / rows, hspace=0.12)
    return figure, list(axes)


def save_figure(figure: Figure, path: Path) -> None:
    figure.savefig(path, dpi=110)
    figure.clear()


def ordered_classes(present: Iterable[str]) -> list[str]:
    """Link classes in report order (nearest first), any unexpected ones after, sorted."""
    found = set(present)
    return [c for c in LINK_CLASSES if c in found] + sorted(found - set(LINK_CLASSES))


def distribution(values: Any, *, scale: float = 1e3, unit: str = "ms") -> dict[str, float]:
    """Count, mean, p50, p95, p99 and max of ``values`` (seconds, shown in ``unit``)."""
    array = np.asarray(values, dtype=float) * scale
    if array.size == 0:
        nan = float("nan")
        return {"count": 0, **{f"{k}_{unit}": nan for k in ("mean", "p50", "p95", "p99", "max")}}
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {
        "count": int(array.size),
        f"mean_{unit}": float(array.mean()),
        f"p50_{unit}": float(p50),
        f"p95_{unit}": float(p95),
        f"p99_{unit}": float(p99),
        f"max_{unit}": float(array.max()),
    }
