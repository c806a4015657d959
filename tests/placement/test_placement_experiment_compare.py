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


def test_placement_experiment_compare_paired_ratios_pair_each_episode_with_the_baseline():
    import pandas as pd

    module = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    base = [0.8, 0.5, 0.9]
    rows = [{"policy": "nearest_fit", "load": 0.8, "seed": s, "score": v} for s, v in enumerate(base)]
    # a learned policy always 10 % better than the baseline on the same episode: ratio exactly 1.1,
    # CI 0, though its scores vary a lot across episodes (an unpaired ratio of means would too)
    rows += [{"policy": "masked_dqn", "load": 0.8, "seed": s, "score": 1.1 * v} for s, v in enumerate(base)]
    rows += [{"policy": "first_fit", "load": 0.8, "seed": s, "score": 0.1} for s in range(3)]
    paired = module["paired_ratios"](pd.DataFrame(rows))
    assert list(paired["policy"]) == ["masked_dqn"]
    r = paired.iloc[0]
    assert abs(r["ratio"] - 1.1) < 1e-12 and r["ratio_ci95"] < 1e-12 and r["episodes"] == 3
    assert r["met_on_mean"] and r["target"] == 1.10
    assert "| masked_dqn | 0.8 | 1.100 ± 0.000 |" in module["paired_markdown"](paired)
    # no baseline episodes (models-only run): nothing to pair
    assert module["paired_ratios"](pd.DataFrame(rows[3:])).empty
