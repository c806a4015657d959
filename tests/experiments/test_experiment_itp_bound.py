"""experiments/itp_bound.py at toy size: saved scores paired with the LP bound, and refused when wrong."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOY = ["--loads", "1.0", "--seeds", "2", "--hosts", "8", "--tasks", "120"]


@pytest.fixture(scope="module")
def module():
    return runpy.run_path(str(ROOT / "experiments" / "itp_bound.py"))


@pytest.fixture(scope="module")
def episodes(module):
    """The toy episodes' bounds and nearest_fit scores, as the script computes them."""
    return module["bounds"]([1.0], 2, 8, 120, 4)


def _saved(episodes, policy_scores):
    rows = [{"policy": "nearest_fit", "load": r.load, "seed": r.seed, "score": r.nearest_fit}
            for r in episodes.itertuples()]
    rows += [{"policy": "mine", "load": r.load, "seed": r.seed, "score": s}
             for r, s in zip(episodes.itertuples(), policy_scores, strict=True)]
    return pd.DataFrame(rows)


def test_bound_table_pairs_each_saved_score_with_its_episode(module, episodes, tmp_path):
    assert (episodes["bound"] > episodes["nearest_fit"]).all()  # overloaded: there is headroom
    # a policy halfway between nearest_fit and the bound on both episodes
    halfway = (episodes["nearest_fit"] + episodes["bound"]) / 2
    path = tmp_path / "compare_episodes.csv"
    _saved(episodes, list(halfway)).to_csv(path, index=False)
    summary = module["main"]([*TOY, "--episodes", str(path), "--policy", "mine", "--out", str(tmp_path)])
    row = summary.iloc[0]
    assert row["mine:headroom"] == pytest.approx(0.5)
    assert row["mine:ratio"] == pytest.approx((halfway / episodes["nearest_fit"]).mean())
    assert row["bound_ratio"] == pytest.approx((episodes["bound"] / episodes["nearest_fit"]).mean())
    assert "| 1 |" in (tmp_path / "bound.md").read_text()
    assert (tmp_path / "bound.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "bound_episodes.csv")) == 2


def test_bound_refuses_scores_from_other_or_unchecked_episodes_or_above_the_bound(module, episodes, tmp_path):
    path = tmp_path / "compare_episodes.csv"
    other = _saved(episodes, list(episodes["nearest_fit"]))
    other.loc[other["policy"] == "nearest_fit", "score"] += 0.01  # not these episodes
    other.to_csv(path, index=False)
    with pytest.raises(ValueError, match="differ from these episodes"):
        module["saved_scores"]([path], episodes, ("mine",))
    _saved(episodes, list(episodes["nearest_fit"])).query("policy == 'mine'").to_csv(path, index=False)
    with pytest.raises(ValueError, match="no nearest_fit row"):
        module["saved_scores"]([path], episodes, ("mine",))
    _saved(episodes, list(episodes["bound"] + 0.01)).to_csv(path, index=False)
    with pytest.raises(ValueError, match="mine scores .* above the bound"):
        module["saved_scores"]([path], episodes, ("mine",))
