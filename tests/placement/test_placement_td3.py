"""TD3 over a continuous relaxation of placement (novacron.placement.relaxation), as specifications.

The continuous action weights a host-scoring rule and gates defer; these tests pin what
the relaxation promises: only feasible hosts, nearest_fit and patient_nearest_fit inside
the policy class, the defer gate, a well-formed and deterministic environment, and the
command line training a model that ``itp evaluate --policy td3`` and
``experiments/itp_compare.py`` load.
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import novacron.sim.envs  # noqa: F401  (registers the environments)
from novacron.cli import itp_cmd
from novacron.placement.heuristics import make_policy, run_episode
from novacron.placement.relaxation import (
    ACTION_DIM,
    NEAREST_FIT_ACTION,
    choose,
    collect_demos,
    teacher_action,
)
from novacron.sim.envs.placement import HOST_FEATURES, PlacementEnv
from novacron.sim.envs.placement_continuous import PlacementContinuousEnv

ROOT = Path(__file__).resolve().parents[2]
F = len(HOST_FEATURES)
SMALL = {"n_hosts": 8, "n_tasks": 150, "load": 0.9, "split": "test"}


def _wrapped(**overrides) -> PlacementContinuousEnv:
    return PlacementContinuousEnv(PlacementEnv(**{**SMALL, **overrides}))


def _visited_states(n_episodes: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """(observation, mask) pairs of real states, visited with a mix of placing and deferring."""
    env = PlacementEnv(**SMALL)
    rng = np.random.default_rng(0)
    states = []
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.action_masks()
            states.append((obs, mask))
            allowed = np.flatnonzero(mask)
            obs, _, done, _, _ = env.step(int(rng.choice(allowed)))
    return states


STATES = _visited_states()
ACTIONS = st.lists(
    st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=ACTION_DIM, max_size=ACTION_DIM
)


@settings(max_examples=300, deadline=None)
@given(action=ACTIONS, index=st.integers(0, len(STATES) - 1))
def test_td3_rule_never_picks_a_host_the_mask_forbids(action, index):
    obs, mask = STATES[index]
    choice = choose(obs, mask, np.array(action, dtype=np.float32), F)
    assert 0 <= choice < len(mask)
    assert mask[choice], f"picked forbidden slot {choice}"


@settings(max_examples=200, deadline=None)
@given(
    action=ACTIONS,
    seed=st.integers(0, 2**31 - 1),
    hosts=st.integers(1, 12),
)
def test_td3_rule_never_picks_an_infeasible_host_on_arbitrary_observations(action, seed, hosts):
    """Any observation (even nonsense) and any mask: a host comes out only if the mask allows it."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(0.0, 1.0, hosts * F + 17).astype(np.float32)
    mask = np.append(rng.random(hosts) < 0.3, True)
    choice = choose(obs, mask, np.array(action, dtype=np.float32), F)
    assert mask[choice]
    if not mask[:hosts].any():
        assert choice == hosts  # nothing fits: defer


def test_td3_nearest_fit_action_makes_nearest_fits_decisions_on_whole_episodes():
    for load, seed in ((0.9, 0), (0.5, 1)):
        env = _wrapped(load=load)
        env.reset(seed=seed)
        sim = env.unwrapped.sim
        heuristic = make_policy("nearest_fit")
        steps, done = 0, False
        while not done:
            assert env.discrete_action(NEAREST_FIT_ACTION) == heuristic.select(sim)
            _, _, done, _, info = env.step(NEAREST_FIT_ACTION)
            steps += 1
        reference = PlacementEnv(**{**SMALL, "load": load})
        reference.reset(seed=seed)
        expected = run_episode(reference.sim, make_policy("nearest_fit")).score
        assert steps > 100 and info["metrics"]["score"] == expected


def test_td3_warm_start_targets_reproduce_patient_nearest_fit_and_the_placing_target_is_nearest_fit():
    env = _wrapped()
    demos = collect_demos(env, "patient_nearest_fit", episodes=2, seed=0)
    assert int(demos["mismatches"]) == 0
    assert (demos["action"][:, -1] > 0).any() and (demos["action"][:, -1] <= 0).any()  # both kinds
    # the placing target (off tanh's saturation) still orders hosts as nearest_fit does
    env.reset(seed=3)
    sim, heuristic, done = env.unwrapped.sim, make_policy("nearest_fit"), False
    while not done:
        assert env.discrete_action(teacher_action(False)) == heuristic.select(sim)
        _, _, done, _, _ = env.step(teacher_action(False))


def test_td3_defer_gate_defers_above_zero_and_places_otherwise():
    obs, mask = next((o, m) for o, m in STATES if m[:-1].sum() >= 2)
    defer = len(mask) - 1
    rng = np.random.default_rng(1)
    for _ in range(50):
        action = rng.uniform(-1, 1, ACTION_DIM)
        action[-1] = rng.uniform(1e-3, 1.0)
        assert choose(obs, mask, action, F) == defer
        action[-1] = rng.uniform(-1.0, 0.0)
        assert choose(obs, mask, action, F) != defer
    # in the environment: a deferred task stays queued and is offered again later
    env = _wrapped()
    env.reset(seed=0)
    sim = env.unwrapped.sim
    task, defers = sim.current, sim.outcomes.defers
    gate_open = np.array([-1, -1, -1, -1, 0, 0.5], dtype=np.float32)
    _, reward, _, _, info = env.step(gate_open)
    assert info["placement_action"] == env.unwrapped.defer_action and reward == 0.0
    assert sim.outcomes.defers == defers + 1 and not sim.outcomes.placed[task]


def test_td3_rtt_price_trades_distance_against_packing():
    """At the highest price the nearest feasible host wins; at the lowest, packing can win."""
    nearest = np.array([-1, 0, 0, 0, 0, -1], dtype=np.float32)
    packing = np.array([1, -1, -1, -1, 0, -1], dtype=np.float32)
    farther = 0
    for obs, mask in STATES:
        hosts = mask[:-1]
        rtt = obs[: len(hosts) * F].reshape(len(hosts), F)[:, HOST_FEATURES.index("rtt_to_origin")]
        assert rtt[choose(obs, mask, nearest, F)] == rtt[hosts].min()
        farther += rtt[choose(obs, mask, packing, F)] > rtt[hosts].min()
    assert farther > 0


def test_td3_environment_passes_gymnasium_and_sb3_checks():
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make("novacron/PlacementContinuous-v0", **SMALL)
    gym_check(env.unwrapped, skip_render_check=True)
    sb3_check(_wrapped(), warn=True)
    assert env.action_space.shape == (ACTION_DIM,)
    assert env.observation_space == PlacementEnv(**SMALL).observation_space


def test_td3_environment_is_deterministic_under_reset_seed():
    def trajectory(seed: int) -> tuple[list, list]:
        env = _wrapped()
        rng = np.random.default_rng(7)
        obs, _ = env.reset(seed=seed)
        observations, rewards, done = [obs], [], False
        while not done:
            obs, reward, done, _, _ = env.step(rng.uniform(-1, 1, ACTION_DIM).astype(np.float32))
            observations.append(obs)
            rewards.append(reward)
        return observations, rewards

    a, b, c = trajectory(5), trajectory(5), trajectory(6)
    assert len(a[0]) == len(b[0]) and all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] == b[1]
    assert len(a[0]) != len(c[0]) or not all(np.array_equal(x, y) for x, y in zip(a[0], c[0], strict=True))


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    itp_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_td3_cli_trains_a_model_that_evaluate_and_compare_load(tmp_path, capsys):
    from stable_baselines3 import TD3

    from novacron.placement.relaxation import load_policy

    small = ["--hosts", "6", "--tasks", "60", "--load", "0.9"]
    model = tmp_path / "td3.zip"
    train = ["itp", "train", "--algo", "td3", *small, "--timesteps", "300", "--demo-episodes", "1"]
    assert _cli([*train, "--pretrain-steps", "50", "--quiet", "--out", str(model)]) == 0
    assert model.is_file() and (tmp_path / "td3" / "progress.csv").is_file()
    capsys.readouterr()
    evaluate = ["itp", "evaluate", "--policy", "td3", "--model", str(model), *small, "--episodes", "2"]
    assert _cli([*evaluate, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "td3" and result["seeds"] == [0, 1]
    for key in itp_cmd.METRICS:
        assert np.isfinite(result[key]) and np.isfinite(result[key + "_ci95"])
    assert 0.0 < result["acceptance_rate"] <= 1.0 and 0.0 < result["decision_latency_us"] < 1e5
    # the numpy actor used for decisions is SB3's deterministic actor
    policy, sb3 = load_policy(model), TD3.load(str(model), device="cpu")
    env = PlacementEnv(n_hosts=6, n_tasks=60, load=0.9, split="test")
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        expected, _ = sb3.predict(obs, deterministic=True)
        np.testing.assert_allclose(policy.action(obs), expected, atol=1e-5)
        action, _ = policy.predict(obs, action_masks=env.action_masks())
        assert env.action_masks()[action]
        obs, _, done, _, _ = env.step(action)
        if done:
            break
    # experiments/itp_compare.py recognises the TD3 model and pairs it with nearest_fit
    compare = runpy.run_path(str(ROOT / "experiments" / "itp_compare.py"))
    df = compare["episodes"]([0.9], range(1), 6, 60, heuristics=("nearest_fit",), td3_path=[model])
    assert set(df["policy"]) == {"nearest_fit", "td3"}
    assert list(compare["paired_ratios"](df)["policy"]) == ["td3"]
    # an unknown model file is an error (exit status 2), not a traceback
    assert _cli(["itp", "evaluate", "--policy", "td3", "--model", str(tmp_path / "no.zip"), *small]) == 2


@pytest.mark.parametrize("teacher", ["nearest_fit", "patient_nearest_fit"])
def test_td3_demonstrations_score_what_their_teacher_scores(teacher):
    """The warm start's data is the teacher's own episode: same score as running the heuristic."""
    env = _wrapped()
    demos = collect_demos(env, teacher, episodes=1, seed=0)
    reference = PlacementEnv(**SMALL)
    reference.reset(seed=0)  # collect_demos's first episode seed is seed * 100000 + 0 = 0
    expected = run_episode(reference.sim, make_policy(teacher), seed=0)
    assert demos["reward"].sum() / SMALL["n_tasks"] == pytest.approx(expected.score, abs=1e-5)
    assert (demos["action"][:, -1] > 0).sum() == expected.defers  # one open gate per explicit defer
    assert len(demos["action"]) == expected.decisions
