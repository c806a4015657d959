"""Rollout planning: forked simulators, sampled futures and the planner itself, at toy size."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.placement.heuristics import DEFER, AdmissionNearestFitPolicy, run_episode
from novacron.placement.rollout import (
    HistoryFuture,
    OracleFuture,
    RolloutPolicy,
    collected_reward,
    committed_beyond,
    finish_with,
)
from novacron.placement.scenario import Scenario

SMALL = Scenario(n_hosts=6, n_tasks=60, load=0.9, split="val")


def _advance(sim, policy, decisions: int) -> None:
    for _ in range(decisions):
        action = policy.select(sim)
        sim.defer() if action == DEFER else sim.place(action)


def test_placement_fork_with_the_real_future_replays_the_episode_exactly():
    base = AdmissionNearestFitPolicy()
    sim = SMALL.episode(seed=2)
    _advance(sim, base, 25)
    fork = sim.fork(OracleFuture().sample(sim, 10_000, np.random.default_rng(0)))
    assert len(fork.tasks) == len(sim.tasks) and fork.current == sim.current
    finish_with(fork, base)  # rejects at once what base would defer forever
    finish_with(sim, base)
    assert np.array_equal(fork.outcomes.placed, sim.outcomes.placed)
    assert np.array_equal(fork.outcomes.host, sim.outcomes.host)
    assert collected_reward(fork) == pytest.approx(collected_reward(sim))


def test_placement_fork_is_independent_and_hides_the_unseen_future():
    base = AdmissionNearestFitPolicy()
    sim = SMALL.episode(seed=4)
    _advance(sim, base, 20)
    before = (sim.cpu_free.copy(), sim.gpu_free.copy(), list(sim.queue), sim.outcomes.placed.copy())
    fork = sim.fork()
    assert len(fork.tasks) == sim.arrived < len(sim.tasks)  # nothing that has not arrived yet
    finish_with(fork, base)
    assert fork.done and not sim.done
    assert np.array_equal(sim.cpu_free, before[0]) and np.array_equal(sim.gpu_free, before[1])
    assert sim.queue == before[2] and np.array_equal(sim.outcomes.placed, before[3])
    late = SMALL.episode(seed=4)
    with pytest.raises(ValueError, match="after the current clock"):
        sim.fork(late.tasks.take(np.arange(0, 3)))  # arrivals before the clock


def test_placement_history_future_resamples_only_what_has_arrived():
    sim = SMALL.episode(seed=1)
    rng = np.random.default_rng(0)
    assert HistoryFuture(min_history=16).sample(sim, 8, rng) is None  # nothing seen yet
    _advance(sim, AdmissionNearestFitPolicy(), 30)
    future = HistoryFuture(min_history=4).sample(sim, 50, rng)
    seen = sim.tasks.take(np.arange(sim.arrived))
    assert len(future) == 50 and future.arrival[0] >= sim.clock
    assert np.all(np.diff(future.arrival) >= 0)
    pairs = set(zip(seen.cpu, seen.duration, strict=True))
    assert all(p in pairs for p in zip(future.cpu, future.duration, strict=True))


def test_placement_committed_beyond_counts_only_time_after_the_horizon():
    sim = SMALL.episode(seed=3)
    _advance(sim, AdmissionNearestFitPolicy(), 15)
    assert committed_beyond(sim, sim.clock) > 0 and committed_beyond(sim, 1e12) == 0.0
    assert committed_beyond(sim, sim.clock) > committed_beyond(sim, sim.clock + sim.max_wait)


def test_placement_rollout_with_exact_future_never_loses_to_its_base():
    # deterministic system, exact simulation of the whole remaining episode: rollout of a
    # Markov base policy is a policy-improvement step, so its score is >= the base's
    for seed in (0, 5):
        base = run_episode(SMALL.episode(seed), AdmissionNearestFitPolicy(), seed=seed)
        planner = RolloutPolicy(top_k=2, horizon=10_000, samples=1, future=OracleFuture())
        planned = run_episode(SMALL.episode(seed), planner, seed=seed)
        assert planner.planned > 0
        assert planned.score >= base.score - 1e-12


def test_placement_rollout_is_seeded_and_follows_base_without_history():
    planner = RolloutPolicy(top_k=1, horizon=12, samples=2, future=HistoryFuture(min_history=10**6))
    a = run_episode(SMALL.episode(7), planner, seed=7)
    b = run_episode(SMALL.episode(7), AdmissionNearestFitPolicy(), seed=7)
    assert planner.planned == 0 and (a.score, a.decisions, a.accepted) == (b.score, b.decisions, b.accepted)
    runs = [
        run_episode(SMALL.episode(7), RolloutPolicy(top_k=1, horizon=12, samples=2), seed=7) for _ in range(2)
    ]
    assert (runs[0].score, runs[0].decisions) == (runs[1].score, runs[1].decisions)
    with pytest.raises(ValueError):
        RolloutPolicy(samples=0)


def test_placement_patient_nearest_fit_waits_only_for_a_nearer_host():
    from novacron.placement.heuristics import NearestFitPolicy, PatientNearestFitPolicy

    sim = Scenario(n_hosts=8, n_tasks=150, load=1.0, split="val").episode(seed=3)
    patient, nearest = PatientNearestFitPolicy(threshold=np.inf, patience=0.5), NearestFitPolicy()
    waited_for_local = went_remote_late = 0
    while not sim.done:
        action, greedy = patient.select(sim), nearest.select(sim)
        task = sim.current
        rtt = sim.host_rtt_ms[sim.tasks.origin[task]]
        waited = (sim.clock - sim.tasks.arrival[task]) / sim.max_wait
        if action == DEFER:
            # deferred only while the nearest region has no room and patience is left
            assert rtt[greedy] > rtt.min() and waited < 0.5
            waited_for_local += 1
            sim.defer()
        else:
            assert action == greedy
            went_remote_late += int(rtt[action] > rtt.min() and waited >= 0.5)
            sim.place(action)
    assert waited_for_local > 0 and went_remote_late > 0


def test_placement_experiment_rollout_tunes_distills_and_evaluates(tmp_path):
    import runpy
    from pathlib import Path

    from sb3_contrib import MaskablePPO

    from novacron.placement.rl import host_scoring_policy
    from novacron.sim.envs.placement import HOST_FEATURES, PlacementEnv

    script = runpy.run_path(str(Path(__file__).resolve().parents[2] / "experiments" / "itp_rollout.py"))
    toy = ["--hosts", "6", "--tasks", "40", "--out", str(tmp_path)]
    table = script["main"](
        [
            "tune-base",
            "--loads",
            "0.9",
            "--seeds",
            "1",
            "--thresholds",
            "0.35,inf",
            "--patiences",
            "0.5",
            *toy,
        ]
    )
    assert len(table) == 2 and (tmp_path / "patient_sweep.csv").stat().st_size > 0
    env = PlacementEnv(n_hosts=6, n_tasks=40, split="fit")
    kwargs = {"max_hosts": 6, "host_features": len(HOST_FEATURES), "hidden": 8}
    MaskablePPO(host_scoring_policy(), env, n_steps=16, policy_kwargs=kwargs, seed=0).save(
        tmp_path / "init.zip"
    )
    planner = "top_k=1,horizon=8,samples=1,min_resource_time=0"
    run = tmp_path / "run"
    summary = script["main"](
        ["distill", "--init", str(tmp_path / "init.zip"), "--run", str(run), "--planner", planner]
        + ["--iterations", "2", "--episodes", "1", "--epochs", "1", "--loads", "0.9"]
        + ["--val-loads", "0.9", "--val-seeds", "1", *toy]
    )
    assert (run / "best.zip").stat().st_size > 0 and summary["best_iteration"] in (-1, 0, 1)
    log = (run / "distill_log.csv").read_text().splitlines()
    assert len(log) == 1 + 3  # header, the initial network and two DAgger iterates
    df = script["main"](["evaluate", "--loads", "0.9", "--seeds", "2", "--planner", planner, *toy])
    policies = ["nearest_fit", "patient_nearest_fit", "rollout:patient_nearest_fit"]
    assert list(df["policy"].unique()) == policies and len(df) == 6
    assert (df["decision_latency_us"] > 0).all()
    # the episodes are itp_compare.py's (PlacementEnv.reset(seed=s)), so its tables can pair them
    from novacron.placement.heuristics import make_policy, run_episode
    from novacron.placement.scenario import Scenario

    compare_env = PlacementEnv(scenario=Scenario(n_hosts=6, n_tasks=40, load=0.9, split="test"))
    for seed in (0, 1):
        compare_env.reset(seed=seed)
        expected = run_episode(compare_env.sim, make_policy("nearest_fit"), seed=seed).score
        assert df.query("policy == 'nearest_fit' and seed == @seed")["score"].item() == expected


def test_placement_cli_evaluates_the_rollout_planner(capsys):
    import argparse
    import json

    from novacron.cli import itp_cmd

    parser = argparse.ArgumentParser()
    itp_cmd.register(parser.add_subparsers(dest="command"))
    toy = ["--hosts", "6", "--tasks", "40", "--load", "0.9", "--episodes", "1", "--json"]
    args = parser.parse_args(
        ["itp", "evaluate", "--policy", "rollout", "--planner", "horizon=8,samples=1", *toy]
    )
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "rollout" and 0 < result["acceptance_rate"] <= 1
    assert result["decision_latency_us"] > 0
    args = parser.parse_args(["itp", "evaluate", "--policy", "rollout", "--base", "magic", *toy])
    assert args.func(args) == 2 and "unknown policy" in capsys.readouterr().err
