"""experiments/itp_fgd.py at toy size: workload inflation, the evaluation of the FGD paper."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from novacron.placement.cluster import GPU_MILLI
from novacron.placement.heuristics import make_policy, run_episode
from novacron.placement.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def module():
    return runpy.run_path(str(ROOT / "experiments" / "itp_fgd.py"))


def test_inflation_asks_for_the_gpu_share_and_nothing_leaves(module):
    sim = module["inflation_episode"](Scenario(n_hosts=8), seed=1, until=1.2)
    t = sim.tasks
    capacity = sim.cluster.hosts.gpus.sum() * GPU_MILLI
    asked = np.cumsum(t.num_gpu * t.gpu_milli) / capacity
    assert asked[-1] >= 1.2 > asked[-2]  # stops at the first task past the share
    assert (np.diff(t.arrival) == 1).all() and (t.duration > 1e9).all()
    # same seed, same draw
    again = module["inflation_episode"](Scenario(n_hosts=8), seed=1, until=1.2)
    assert again.tasks.names == t.names


def test_inflation_curve_counts_only_placed_gpu_and_it_never_falls(module):
    sim = module["inflation_episode"](Scenario(n_hosts=8), seed=0, until=1.3)
    run_episode(sim, make_policy("best_fit"))
    curve = module["curve"](sim)
    assert (np.diff(curve["allocated_gpu"]) >= 0).all()  # nothing leaves
    assert (curve["allocated_gpu"] <= curve["arrived_gpu"] + 1e-12).all()
    assert curve["allocated_gpu"].iloc[-1] <= 1.0
    # past 100 % asked some tasks are turned away, and each rejection is counted
    assert curve["rejected_tasks"].iloc[-1] == (~sim.outcomes.placed).sum() > 0


def test_inflation_reads_each_policy_where_the_demand_reaches_each_point(module):
    episodes = pd.DataFrame(
        {
            "arrival": [0, 1, 2, 0, 1, 2],
            "arrived_gpu": [0.5, 0.9, 1.1, 0.5, 0.9, 1.1],
            "allocated_gpu": [0.5, 0.8, 0.8, 0.5, 0.9, 1.0],
            "rejected_tasks": [0, 1, 2, 0, 0, 0],
            "policy": ["a", "a", "a", "b", "b", "b"],
            "seed": [0] * 6,
        }
    )
    table = module["at_points"](episodes, [0.9, 1.0]).set_index(["policy", "arrived_gpu"])["allocated_gpu"]
    assert table[("a", 0.9)] == 0.8 and table[("a", 1.0)] == 0.8  # 1.0 is first reached at arrival 2
    assert table[("b", 0.9)] == 0.9 and table[("b", 1.0)] == 1.0
    assert module["markdown"](module["at_points"](episodes, [1.0])).index("| b |") < 80  # best first


def test_inflation_thins_each_episode_evenly_and_keeps_its_end(module):
    episodes = pd.DataFrame({"policy": ["a"] * 10 + ["b"] * 3, "seed": 0, "arrival": [*range(10), *range(3)]})
    kept = module["thin"](episodes, 4)
    assert kept[kept["policy"] == "a"]["arrival"].tolist() == [0, 3, 6, 9]
    assert kept[kept["policy"] == "b"]["arrival"].tolist() == [0, 1, 2]  # short episodes whole


def test_inflation_writes_its_tables_and_plot(module, tmp_path):
    toy = ["--policies", "fgd,random", "--seeds", "2", "--hosts", "8", "--points", "0.9,1.1"]
    argv = [*toy, "--out", str(tmp_path)]
    table = module["main"](argv)
    assert set(table["policy"]) == {"fgd", "random"} and (table["seeds"] == 2).all()
    for name in ("inflation_episodes.csv", "inflation.csv", "inflation.md", "inflation.png"):
        assert (tmp_path / name).stat().st_size > 0
