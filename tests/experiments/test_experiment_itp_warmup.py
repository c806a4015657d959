"""experiments/itp_warmup.py at toy size: each part of an episode scored and paired with nearest_fit."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def module():
    return runpy.run_path(str(ROOT / "experiments" / "itp_warmup.py"))


def test_warmup_parts_are_slices_of_the_episode_score(module):
    rewards = np.array([1.0, 1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0])
    base = np.full(8, 0.5)
    rows = pd.DataFrame(module["part_rows"]("p", 0.8, 0, rewards, base, np.linspace(0, 0.7, 8), 4))
    assert list(rows["part"]) == ["1", "2", "3", "4", "after warm-up", "whole episode"]
    assert list(rows["score"]) == [1.0, 0.25, 0.5, 0.5, rewards[2:].mean(), rewards.mean()]
    # equal parts: the episode's score is the mean of the parts' scores
    assert rows["score"][:4].mean() == pytest.approx(rewards.mean())
    assert rows["gpu_utilisation"][0] == pytest.approx(0.05)


def test_warmup_gpu_utilisation_counts_the_tasks_running_at_each_arrival(module):
    from novacron.placement.heuristics import make_policy, run_episode
    from novacron.placement.scenario import Scenario

    sim = Scenario(n_hosts=6, n_tasks=60, load=0.9, split="test").episode(0)
    run_episode(sim, make_policy("nearest_fit"))
    used = module["gpu_utilisation_at_arrivals"](sim)
    assert used[0] == 0.0 and (used >= 0).all() and (used <= 1 + 1e-9).all()
    t, out = sim.tasks, sim.outcomes
    i = 30
    start = t.arrival + out.wait
    running = out.placed & (start < t.arrival[i]) & (start + t.duration >= t.arrival[i])
    gpus = sim.cluster.hosts.gpus.sum() * 1000
    assert used[i] == pytest.approx((t.num_gpu * t.gpu_milli)[running].sum() / gpus)


def test_warmup_writes_paired_tables_and_plot(module, tmp_path):
    toy = ["--hosts", "6", "--tasks", "60", "--no-models"]
    argv = ["--loads", "0.9", "--seeds", "2", *toy, "--out", str(tmp_path)]
    summary = module["main"](argv)
    episodes = pd.read_csv(tmp_path / "warmup_episodes.csv")
    assert len(episodes) == 3 * 2 * 6  # nearest_fit and two heuristics, 2 episodes, 4 parts + 2 readings
    base = summary[summary["policy"] == "nearest_fit"]
    assert np.allclose(base["ratio"], 1.0) and np.allclose(base["ratio_ci95"], 0.0)
    assert "| 0.9 | stream_nearest_fit |" in (tmp_path / "warmup.md").read_text()
    assert (tmp_path / "warmup.png").stat().st_size > 0
