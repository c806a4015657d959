"""Allocators on the environment's episodes, in the environment and over AMST in the simulator."""

import numpy as np
import pytest

from novacron.prediction.allocation import EarliestDeadlineFirst, EqualShare
from novacron.prediction.traces import data_dir, trace_files
from novacron.sim.allocation import in_env, over_amst
from novacron.sim.envs.bandwidth import AllocationEpisode, BandwidthAllocationEnv

FILES = trace_files([data_dir("norway_hsdpa")])[:2]


def hand_episode(arrivals, mbps=8.0, steps=30) -> AllocationEpisode:
    return AllocationEpisode(
        trace=np.full(steps, mbps),
        history=np.full(8, mbps),
        arrivals=arrivals,
        dt=1.0,
        max_transfers=2,
        horizon=5,
    )


def test_a_feasible_transfer_meets_its_deadline_and_an_impossible_one_is_missed():
    # 8 Mbit/s: 16 Mb need 2 s (deadline 6 steps: met); 200 Mb cannot be done in 10 steps
    result = over_amst(hand_episode([(0, 16.0, 6, 1.0), (1, 200.0, 10, 1 / 3)]), EarliestDeadlineFirst())
    assert result["misses"] == 1 and result["weighted_misses"] == pytest.approx(1 / 3)
    assert 0.25 < result["goodput_over_capacity"] <= 1.0


def test_arrivals_beyond_the_slots_are_dropped_as_misses_as_in_the_environment():
    arrivals = [(0, 80.0, 25, 1.0), (0, 80.0, 25, 1.0), (0, 8.0, 25, 2 / 3)]  # the third finds no slot
    result = over_amst(hand_episode(arrivals), EqualShare())
    assert result["misses"] == 1 and result["weighted_misses"] == pytest.approx(2 / 3)


def test_the_episode_is_the_envs_and_both_sides_report_the_same_metrics():
    env = BandwidthAllocationEnv(traces=FILES, max_steps=40)
    episode = env.episode(seed=3)
    env.reset(seed=3)
    assert episode.arrivals[: len(env.arrival_log)] == env.arrival_log  # the reset's own arrivals
    assert len(episode.trace) == 40 and len(episode.history) == env.history
    in_the_env = in_env(env, EarliestDeadlineFirst(), seed=3)
    measured = over_amst(episode, EarliestDeadlineFirst(), seed=3)
    told = over_amst(episode, EarliestDeadlineFirst(), seed=3, true_forecast=True)
    assert set(in_the_env) == {"misses", "weighted_misses", "goodput_over_capacity"}
    assert set(measured) == set(told) == set(in_the_env) | {"misses_nearly_done"}
    assert measured == over_amst(episode, EarliestDeadlineFirst(), seed=3)  # deterministic


def test_a_miss_with_nearly_every_byte_delivered_is_counted_as_nearly_done():
    # 8 Mbit/s for 5 steps, less the first streams' start: 37 Mb misses by a hair (~97 % of it
    # acknowledged), 80 Mb by half
    hair = over_amst(hand_episode([(0, 37.0, 5, 1.0)]), EarliestDeadlineFirst())
    half = over_amst(hand_episode([(0, 80.0, 5, 1.0)]), EarliestDeadlineFirst())
    assert hair["misses"] == half["misses"] == 1
    assert hair["misses_nearly_done"] == 1 and half["misses_nearly_done"] == 0


def test_sender_options_reach_the_sender():
    episode = hand_episode([(0, 16.0, 6, 1.0)])
    assert over_amst(episode, EarliestDeadlineFirst(), sender_options={"pieces": 1})["misses"] == 0
    with pytest.raises(ValueError, match="window > 0"):
        over_amst(episode, EarliestDeadlineFirst(), sender_options={"window": 0.0})
