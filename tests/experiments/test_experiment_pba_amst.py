"""The allocators-over-AMST experiment runs end to end on the environment's own episodes."""

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_each_allocator_runs_in_the_env_and_over_amst_on_the_same_episode(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "pba_amst.py"))
    table = module["main"](
        ["--traces", "1", "--episodes-per-trace", "1", "--workers", "1", "--out", str(tmp_path)]
    )
    assert {p.name for p in tmp_path.iterdir()} == {"amst.csv", "amst_episodes.csv", "amst.png"}
    policies = {"equal", "proportional", "edf", "robust_mpc", "edf_margin"}
    if list((ROOT / "results/pba/models").glob("*.zip")):  # the shipped learned allocators, pooled
        policies.add("rl_ppo_residual")
    assert set(table["policy"]) == policies and set(table["where"]) == {"env", "amst", "amst_true_forecast"}
    misses = table.set_index(["where", "policy"])["weighted_misses_mean"]
    # on this episode, as in the environment, EDF misses far fewer deadlines than sharing in
    # proportion to the remaining bytes (the allocators were not tuned to the simulator)
    for where in ("env", "amst", "amst_true_forecast"):
        assert misses[where, "edf"] < 0.5 * misses[where, "proportional"]


def test_a_run_is_paired_with_another_senders_run_of_the_same_episodes(tmp_path):
    """``--paired-with``: per allocator, the difference to the other run on the same episodes (here
    a run with a smaller window: at a 300 ms round trip, one that leaves the link idle)."""
    module = runpy.run_path(str(ROOT / "experiments" / "pba_amst.py"))
    common = ["--traces", "1", "--episodes-per-trace", "1", "--workers", "1", "--rtt", "0.3"]
    module["main"]([*common, "--window", "0.05", "--round-trips", "0", "--out", str(tmp_path / "small")])
    module["main"](
        [*common, "--out", str(tmp_path / "own"), "--paired-with", str(tmp_path / "small/amst_episodes.csv")]
    )
    versus = module["pd"].read_csv(tmp_path / "own/vs_previous.csv").set_index(["where", "policy"])
    assert set(versus.index.get_level_values("where")) == {"amst", "amst_true_forecast"}
    assert (versus["episodes"] == 1).all()
    assert list(versus["difference"]) == pytest.approx(
        list(versus["weighted_misses"] - versus["weighted_misses_previous"])
    )
    assert (
        versus.loc[("amst", "edf"), "goodput_over_capacity"]
        > versus.loc[("amst", "edf"), "goodput_over_capacity_previous"]
    )
