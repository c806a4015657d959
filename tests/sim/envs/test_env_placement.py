"""PlacementEnv (``novacron/Placement-v0``): the gymnasium and SB3 contracts, determinism, masks."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import novacron.sim.envs  # noqa: F401  (registers the environments)
from novacron.sim.envs.placement import HOST_FEATURES, TASK_FEATURES, PlacementEnv

SMALL = dict(n_hosts=6, max_hosts=8, n_tasks=60, load=0.9)


def small_env(**kw) -> PlacementEnv:
    return PlacementEnv(**{**SMALL, **kw})


def rollout(env: PlacementEnv, seed: int, steps: int = 10_000):
    """Masked random actions; returns (observations, rewards, actions)."""
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards, actions = [obs], [], []
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"]
        observations.append(obs)
        rewards.append(reward)
        actions.append(action)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), actions


def test_env_placement_passes_gymnasium_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        gym_check_env(small_env(), skip_render_check=True)


def test_env_placement_passes_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(small_env(), warn=True)


def test_env_placement_is_registered():
    env = gym.make("novacron/Placement-v0", **SMALL)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert env.action_space.n == SMALL["max_hosts"] + 1
    env.close()


def test_env_placement_deterministic_under_reset_seed():
    a = rollout(small_env(), seed=7)
    b = rollout(small_env(), seed=7)
    c = rollout(small_env(), seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not (len(a[0]) == len(c[0]) and np.array_equal(a[0], c[0]))


def test_env_placement_observations_float32_in_bounds_and_padding_zero():
    env = small_env()
    observations, rewards, _ = rollout(env, seed=3)
    assert observations.dtype == np.float32
    assert observations.min() >= 0.0 and observations.max() <= 1.0
    host_part = observations[:, : env.max_hosts * len(HOST_FEATURES)].reshape(
        len(observations), env.max_hosts, len(HOST_FEATURES)
    )
    assert (host_part[:, : SMALL["n_hosts"], 0] == 1).all()  # presence flag
    assert (host_part[:, SMALL["n_hosts"] :, :] == 0).all()  # padded slots are empty
    assert observations.shape[1] == env.max_hosts * len(HOST_FEATURES) + len(TASK_FEATURES)
    assert ((rewards == 0) | ((rewards >= 0.75) & (rewards <= 1.0))).all()


def test_env_placement_masks_allow_exactly_the_fitting_hosts():
    env = small_env()
    env.reset(seed=5)
    for _ in range(40):
        mask = env.action_masks()
        sim = env.sim
        assert mask.dtype == bool and mask.shape == (env.max_hosts + 1,)
        assert mask[env.defer_action]
        assert not mask[sim.n_hosts : env.max_hosts].any()
        task = sim.current
        t = sim.tasks
        for host in range(sim.n_hosts):
            fits = (
                sim.cpu_free[host] >= t.cpu[task]
                and sim.mem_free[host] >= t.mem[task]
                and (sim.gpu_free[host] >= t.gpu_milli[task]).sum() >= t.num_gpu[task]
            )
            assert mask[host] == fits
        _, _, terminated, _, _ = env.step(int(np.flatnonzero(mask)[0]))
        if terminated:
            break


def test_env_placement_invalid_action_defers_and_return_matches_score():
    env = small_env()
    env.reset(seed=2)
    mask = env.action_masks()
    if not mask[: env.max_hosts].all():
        bad = int(np.flatnonzero(~mask)[0])
        _, reward, _, _, info = env.step(bad)
        assert info["invalid_action"] and reward == 0.0
    env.reset(seed=11)
    total, info, terminated = 0.0, {}, False
    while not terminated:
        _, reward, terminated, _, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
        total += reward
    m = info["metrics"]
    assert total / m["tasks"] == pytest.approx(m["score"])


def test_env_placement_works_in_subproc_vec_env():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([lambda: small_env(n_tasks=20) for _ in range(2)])
    try:
        venv.seed(0)
        obs = venv.reset()
        assert obs.shape == (2, small_env().observation_space.shape[0])
        for _ in range(5):
            masks = np.array(venv.env_method("action_masks"))
            actions = [int(np.flatnonzero(m)[0]) for m in masks]
            obs, rewards, dones, infos = venv.step(np.array(actions))
            assert obs.dtype == np.float32
    finally:
        venv.close()
