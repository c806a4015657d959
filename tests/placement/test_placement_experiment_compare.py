"""experiments/itp_compare.py at toy size: it writes its table, per-episode rows and plot."""

from __future__ import annotations

import runpy
from pathlib import Path

from novacron.placement.heuristics import HEURISTICS

ROOT = Path(__file__).resolve().parents[2]


def test_placement_experiment_compare_writes_table_and_plot(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    table = module["main"](
        ["--loads", "0.5,0.9", "--seeds", "2", "--hosts", "6", "--tasks", "50", "--out", str(tmp_path)]
    )
    assert len(table) == 2 * len(HEURISTICS) and (table["seeds"] == 2).all()
    for name in ("compare.csv", "compare.md", "compare_episodes.csv", "compare.png"):
        assert (tmp_path / name).stat().st_size > 0
