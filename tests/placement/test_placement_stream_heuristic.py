"""stream_nearest_fit: big tasks are admitted by the recent offered load, not by the episode's end."""

from __future__ import annotations

import pytest

from novacron.placement.heuristics import (
    HEURISTICS,
    StreamNearestFitPolicy,
    make_policy,
    offered_load,
    resource_times,
    run_episode,
)
from novacron.placement.scenario import Scenario

SEEDS = (0, 1, 2)


def _big_placed(load: float, name: str) -> int:
    """Tasks above the horizon teacher's resource-time threshold that ``name`` placed, over SEEDS."""
    placed = 0
    for seed in SEEDS:
        sim = Scenario(n_hosts=8, n_tasks=160, load=load).episode(seed)
        run_episode(sim, make_policy(name), seed=seed)
        placed += int((sim.outcomes.placed & (resource_times(sim) > 0.3)).sum())
    return placed


def test_stream_nearest_fit_is_a_deployable_heuristic():
    assert "stream_nearest_fit" in HEURISTICS
    assert StreamNearestFitPolicy().tail == 0  # never looks at how many tasks the episode has


def test_the_offered_load_estimate_rises_with_the_scenarios_load():
    for seed in SEEDS:
        estimates = []
        for load in (0.5, 0.8, 1.0):
            sim = Scenario(n_hosts=8, n_tasks=160, load=load).episode(seed)
            while not sim.done:
                sim.defer()
            estimates.append(offered_load(sim, window=len(sim.tasks)))
        assert estimates == sorted(estimates) and estimates[0] > 0


def test_big_tasks_are_admitted_at_low_load_and_turned_away_at_high_load():
    assert _big_placed(0.5, "stream_nearest_fit") > _big_placed(0.5, "admission_nearest_fit")
    assert _big_placed(1.0, "stream_nearest_fit") <= _big_placed(1.0, "admission_nearest_fit")


def test_stream_nearest_fit_rejects_a_window_too_small_to_estimate_from():
    with pytest.raises(ValueError, match="window"):
        StreamNearestFitPolicy(window=1)
