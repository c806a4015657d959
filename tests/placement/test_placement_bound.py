"""novacron.placement.bound: the LP upper bound on an episode's score."""

from __future__ import annotations

import numpy as np
import pytest
from hand_episodes import hand_episode

from novacron.placement.bound import nearest_rewards, score_upper_bound
from novacron.placement.heuristics import HEURISTICS, HORIZON_HEURISTICS, make_policy, run_episode
from novacron.placement.metrics import placement_reward
from novacron.placement.scenario import Scenario

#: two regions 100 ms apart (1 ms inside one)
RTT = np.array([[1.0, 100.0], [100.0, 1.0]])


def _sim(host_cpu, host_region, tasks, max_wait):
    """CPU-only hosts in the two regions; ``tasks`` = (cpu, arrival, duration, origin) rows."""
    hosts = [(cpu, 0, region) for cpu, region in zip(host_cpu, host_region, strict=True)]
    rows = [(cpu, 0, 0, arrival, duration, origin) for cpu, arrival, duration, origin in tasks]
    return hand_episode(hosts, rows, rtt_ms=RTT, max_wait=max_wait)


NEAR = placement_reward(1.0, 100.0)  # reward of a task placed in its own region
FAR = placement_reward(100.0, 100.0)


def test_bound_two_tasks_that_cannot_share_the_host_or_wait_count_once():
    sim = _sim([1000], [0], [(1000, 0, 100, 0), (1000, 1, 100, 0)], max_wait=10)
    bound = score_upper_bound(sim)
    assert bound.score == pytest.approx(NEAR / 2)
    assert bound.admitted.sum() == pytest.approx(1.0)


def test_bound_lets_a_task_wait_for_the_one_before_it_and_a_real_schedule_reaches_it():
    # the second task may wait 150 s; the first leaves after 100 s
    sim = _sim([1000], [0], [(1000, 0, 100, 0), (1000, 1, 100, 0)], max_wait=150)
    bound = score_upper_bound(sim)
    assert bound.score == pytest.approx(NEAR)
    reached = run_episode(_sim([1000], [0], [(1000, 0, 100, 0), (1000, 1, 100, 0)], max_wait=150),
                          make_policy("nearest_fit"))
    assert reached.score == pytest.approx(bound.score)


def test_bound_pays_each_task_the_reward_of_its_nearest_host_that_could_hold_it():
    # host 0 (region 0) is too small for task 1, which must go to region 1 far from its origin;
    # task 2 fits no host at all
    sim = _sim([500, 2000], [0, 1], [(400, 0, 10, 0), (1500, 0, 10, 0), (3000, 0, 10, 1)], max_wait=5)
    np.testing.assert_allclose(nearest_rewards(sim), [NEAR, FAR, 0.0])
    bound = score_upper_bound(sim)
    assert bound.admitted[2] == 0.0
    assert bound.score == pytest.approx((NEAR + FAR) / 3)


def test_bound_tightens_as_the_waiting_window_is_cut_finer():
    sim = Scenario(n_hosts=8, n_tasks=150, load=1.0, split="test").episode(3)
    scores = [score_upper_bound(sim, start_bins=b).score for b in (1, 2, 4)]
    assert scores[0] >= scores[1] - 1e-9 >= scores[2] - 2e-9
    with pytest.raises(ValueError, match="start_bins"):
        score_upper_bound(sim, start_bins=0)


@pytest.mark.parametrize("load,seed", [(0.8, 0), (1.0, 1), (1.2, 2)])
def test_no_heuristic_scores_above_the_bound(load, seed):
    scenario = Scenario(n_hosts=8, n_tasks=150, load=load, split="test")
    bound = score_upper_bound(scenario.episode(seed)).score
    assert bound < 1.0  # the episode is overloaded: the bound is not vacuous
    for name in (*HEURISTICS, *HORIZON_HEURISTICS):
        score = run_episode(scenario.episode(seed), make_policy(name), seed=seed).score
        assert score <= bound + 1e-9, name
