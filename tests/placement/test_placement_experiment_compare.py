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


def test_placement_experiment_compare_pooled_ratios_count_episodes_not_runs_times_episodes():
    """Two training runs scored on the same three episodes: their six rows are not six independent
    samples. Here each episode's mean ratio over the runs is exactly 1.1, so the pooled ratio's CI
    is 0 over 3 episodes; counted as 6 independent rows it would be wide."""
    import pandas as pd

    module = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    base = [0.8, 0.5, 0.9]
    rows = [{"policy": "nearest_fit", "load": 0.8, "seed": s, "score": v} for s, v in enumerate(base)]
    for shift in (0.05, -0.05):  # two training runs
        rows += [
            {"policy": "masked_dqn:dqn:pooled", "load": 0.8, "seed": s, "score": (1.1 + shift) * v}
            for s, v in enumerate(base)
        ]
    df = pd.DataFrame(rows)
    for metric in module["METRICS"]:  # summary() wants every metric; these are the scores
        df[metric] = df["score"]
    (r,) = module["paired_ratios"](df).itertuples()
    assert abs(r.ratio - 1.1) < 1e-12 and r.ratio_ci95 < 1e-12 and r.episodes == 3
    pooled = module["summary"](df).set_index("policy").loc["masked_dqn:dqn:pooled"]
    assert pooled["seeds"] == 3 and abs(pooled["score"] - 1.1 * sum(base) / 3) < 1e-12


def test_placement_experiment_compare_pools_dqn_seeds_and_pairs_with_several_baselines(tmp_path):
    from novacron.placement.rl import DQNConfig, MaskedDQN
    from novacron.sim.envs.placement import PlacementEnv

    env = PlacementEnv(n_hosts=6, n_tasks=40, load=0.9)
    argv = ["--loads", "0.9", "--seeds", "2", "--hosts", "6", "--tasks", "40", "--out", str(tmp_path)]
    argv += ["--heuristics", "nearest_fit,patient_nearest_fit"]
    argv += ["--paired-baselines", "nearest_fit,patient_nearest_fit"]
    for seed in (0, 1):  # two "training seeds": run folders dqn_s0, dqn_s1
        (tmp_path / f"dqn_s{seed}").mkdir()
        model = MaskedDQN(
            env.observation_space.shape[0], env.action_space.n, DQNConfig(hidden=(8,), seed=seed)
        )
        model.save(tmp_path / f"dqn_s{seed}" / "best.zip")
        argv += ["--dqn-model", str(tmp_path / f"dqn_s{seed}" / "best.zip")]
    module = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    table = module["main"](argv).set_index("policy")
    assert {"masked_dqn:dqn_s0", "masked_dqn:dqn_s1", "masked_dqn:dqn:pooled"} <= set(table.index)
    assert table.loc["masked_dqn:dqn:pooled", "seeds"] == 2  # episodes (2 training seeds ran each)
    pooled_score = table.loc[["masked_dqn:dqn_s0", "masked_dqn:dqn_s1"], "score"].mean()
    assert abs(table.loc["masked_dqn:dqn:pooled", "score"] - pooled_score) < 1e-12
    text = (tmp_path / "pooled.md").read_text()
    assert "| load | dqn_s0 | dqn_s1 | pooled | pooled / nearest_fit, paired " in text
    assert "pooled / patient_nearest_fit, paired |" in text and "\n| 0.9 | " in text
    paired = (tmp_path / "paired.md").read_text()
    assert "### score / patient_nearest_fit" in paired and "| (none) |" in paired


def test_placement_experiment_compare_merges_files_of_the_same_episodes_and_refuses_others(tmp_path):
    """``--from-episodes``: a heuristic in two files must score the same per episode (then it is
    kept once); if it does not, the files hold different episodes and pairing them is refused."""
    import pandas as pd
    import pytest

    module = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    base = [{"policy": "nearest_fit", "load": 0.8, "seed": s, "score": v} for s, v in enumerate([0.8, 0.5])]
    model = [{"policy": "masked_dqn", "load": 0.8, "seed": s, "score": 0.9} for s in range(2)]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    pd.DataFrame(base).to_csv(a, index=False)
    pd.DataFrame(base + model).to_csv(b, index=False)
    merged = module["merge_episode_files"]([a, b])
    assert len(merged) == 4 and list(merged.columns) == ["policy", "load", "seed", "score"]
    other = [{**row, "score": row["score"] + 0.01} for row in base]  # another episode per seed
    pd.DataFrame(other + model).to_csv(b, index=False)
    with pytest.raises(ValueError, match=r"nearest_fit scores differently at load 0.8, seed 0 in .*a\.csv"):
        module["merge_episode_files"]([a, b])
