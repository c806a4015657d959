"""BandwidthAllocationEnv (``novacron/BandwidthAllocation-v0``): contracts, determinism, reward, training."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import novacron.sim.envs  # noqa: F401  (registers the environments)
from novacron.prediction.allocation import EarliestDeadlineFirst, baselines
from novacron.prediction.traces import data_dir, trace_files
from novacron.sim.envs.bandwidth import TRANSFER_FEATURES, BandwidthAllocationEnv, run_episode

FILES = trace_files([data_dir("norway_hsdpa")])[:4]
SMALL = dict(traces=FILES, max_steps=60)


def small_env(**kw) -> BandwidthAllocationEnv:
    return BandwidthAllocationEnv(**{**SMALL, **kw})


def rollout(env: BandwidthAllocationEnv, seed: int):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, rewards = [obs], []
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(
            (rng.random(env.max_transfers) / 4).astype(np.float32)
        )
        observations.append(obs)
        rewards.append(reward)
        done = terminated or truncated
    return np.array(observations), np.array(rewards)


def test_env_bandwidth_passes_gymnasium_check_env():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(small_env(), skip_render_check=True)


def test_env_bandwidth_passes_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the one advisory we accept: shares are naturally in [0, 1], SB3 recommends [-1, 1] boxes
        warnings.filterwarnings("ignore", message="We recommend you to use a symmetric and normalized Box")
        check_env(small_env(), warn=True)


def test_env_bandwidth_is_registered():
    env = gym.make("novacron/BandwidthAllocation-v0", **SMALL)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (8,)
    env.close()


def test_env_bandwidth_deterministic_under_reset_seed():
    a = rollout(small_env(), seed=7)
    b = rollout(small_env(), seed=7)
    c = rollout(small_env(), seed=8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (len(a[0]) == len(c[0]) and np.array_equal(a[0], c[0]))


def test_env_bandwidth_observations_float32_in_bounds_and_padding_zero():
    env = small_env()
    for seed in range(3):
        observations, _ = rollout(env, seed)
        assert observations.dtype == np.float32
        assert observations.min() >= 0.0 and observations.max() <= 1.0
        per = observations[:, -env.max_transfers * len(TRANSFER_FEATURES) :].reshape(
            len(observations), env.max_transfers, len(TRANSFER_FEATURES)
        )
        active = per[:, :, -1]
        assert set(np.unique(active)) <= {0.0, 1.0}
        assert (per[active == 0] == 0).all()


def test_env_bandwidth_reward_is_goodput_minus_penalties():
    # constant 10 Mbps link, one transfer forced in: hand-check delivery, over-allocation and a miss
    trace = pd.DataFrame({"mbps": np.full(30, 10.0)})
    env = BandwidthAllocationEnv(traces=[trace], arrival_rate=1e-9, history=4, max_steps=20)
    env.reset(seed=0)
    env.active[0], env.remaining[0], env.deadline[0], env.priority[0] = True, 25.0, 2, 1.0
    _, reward, *_, info = env.step(np.array([0.5] + [0.0] * 7, dtype=np.float32))
    assert info["delivered_mb"] == pytest.approx(5.0) and reward == pytest.approx(0.5)
    # action on an empty slot is ignored; the transfer misses its deadline with 20 Mb left
    _, reward, *_, info = env.step(np.array([0.3, 1.0] + [0.0] * 6, dtype=np.float32))
    assert info["misses"] == 1 and reward == pytest.approx(0.3 - 1.0)
    # over-allocation: two transfers asking 1.0 each -> S = 2, loss 50%, penalty 1
    env.active[:2], env.remaining[:2], env.deadline[:2], env.priority[:2] = True, 100.0, 10, 1.0
    _, reward, *_, info = env.step(np.array([1.0, 1.0] + [0.0] * 6, dtype=np.float32))
    assert info["over_allocation"] == pytest.approx(1.0)
    assert info["delivered_mb"] == pytest.approx(5.0) and reward == pytest.approx(0.5 - 1.0)


def test_env_bandwidth_baselines_beat_doing_nothing():
    env = small_env()
    idle = run_episode(env, lambda obs: np.zeros(8, dtype=np.float32), seed=3)
    for allocator in baselines():
        result = run_episode(env, allocator, seed=3)
        assert result["goodput_over_capacity"] > 0.2 > idle["goodput_over_capacity"] == 0.0
        assert result["return"] > idle["return"]
    assert run_episode(env, EarliestDeadlineFirst(), seed=3) == run_episode(
        env, EarliestDeadlineFirst(), seed=3
    )


def test_env_bandwidth_works_in_subproc_vec_env():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([lambda: small_env(max_steps=10) for _ in range(2)], start_method="fork")
    try:
        venv.seed(0)
        obs = venv.reset()
        assert obs.shape == (2, small_env().observation_space.shape[0])
        for _ in range(12):  # crosses an episode end (auto-reset)
            obs, rewards, dones, infos = venv.step(np.full((2, 8), 0.1, dtype=np.float32))
            assert obs.dtype == np.float32
    finally:
        venv.close()


def test_env_bandwidth_tiny_ppo_training_run_completes():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    model = PPO("MlpPolicy", small_env(), n_steps=128, batch_size=64, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=256)
    result = run_episode(small_env(), lambda obs: model.predict(obs, deterministic=True)[0], seed=0)
    assert np.isfinite(result["return"])
