"""experiments/itp_progress_ablation.py at toy size: the shipped models, with and without progress."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_progress_ablation_scores_each_setting_paired_with_nearest_fit(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "itp_progress_ablation.py"))
    model = ROOT / "results/itp/runs/bchor_s0/best.zip"
    argv = ["--loads", "0.8", "--seeds", "1", "--model", str(model), "--out", str(tmp_path)]
    summary = module["main"](argv)
    assert list(summary["progress"]) == ["as observed", "fixed 0", "fixed 0.3"]
    episodes = module["pd"].read_csv(tmp_path / "progress_ablation.csv")
    assert len(episodes) == 3 and episodes["nearest_fit"].nunique() == 1  # one baseline episode
    assert (episodes["ratio"] == episodes["score"] / episodes["nearest_fit"]).all()
    assert "| 0.8 | fixed 0 |" in (tmp_path / "progress_ablation.md").read_text()
