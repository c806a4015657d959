"""BandwidthAllocationEnv (``novacron/BandwidthAllocation-v0``): contracts, determinism, reward, training."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import novacron.sim.envs  # noqa: F401  (registers the environments)
from novacron.prediction.allocation import EarliestDeadlineFirst, Transfer, baselines
from novacron.prediction.traces import data_dir, trace_files
from novacron.sim.envs.bandwidth import (
    PRIORITIES,
    RANKED_FEATURES,
    TRANSFER_FEATURES,
    BandwidthAllocationEnv,
    LearnedAllocator,
    PairedBaselineReward,
    ScoredAllocationWrapper,
    allocator_action,
    run_episode,
)

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


@pytest.mark.parametrize("mode", ScoredAllocationWrapper.MODES)
def test_env_bandwidth_scored_wrapper_passes_check_env(mode):
    from stable_baselines3.common.env_checker import check_env

    env = ScoredAllocationWrapper(small_env(), mode=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gymnasium advises checking the unwrapped env; we check both
        gym_check_env(env, skip_render_check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, warn=True)  # [-1, 1] actions: no advisory at all
    assert env.observation_space.shape == (env.n_global + 1 + 8 * len(RANKED_FEATURES),)


@pytest.mark.parametrize("mode", ["residual", "reorder"])
def test_env_bandwidth_scored_wrapper_zero_action_is_edf(mode):
    env = ScoredAllocationWrapper(small_env(), mode=mode)
    zero = lambda obs: np.zeros(8, dtype=np.float32)  # noqa: E731
    for seed in range(3):
        assert run_episode(env, zero, seed=seed) == run_episode(
            small_env(), EarliestDeadlineFirst(), seed=seed
        )


@pytest.mark.parametrize("mode", ScoredAllocationWrapper.MODES)
def test_env_bandwidth_scored_wrapper_shares_fill_the_link_and_are_deterministic(mode):
    env = ScoredAllocationWrapper(small_env(), mode=mode)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        done, observations = False, [obs]
        while not done:
            action = rng.uniform(-1, 1, 8).astype(np.float32)
            shares = env.shares(action)
            active = env.unwrapped.active
            assert (shares >= 0).all() and (shares[~active] == 0).all()
            assert shares.sum() == pytest.approx(1.0 if active.any() else 0.0, abs=1e-6)
            obs, _, terminated, truncated, info = env.step(action)
            assert info["over_allocation"] <= 1e-6 and env.observation_space.contains(obs)
            observations.append(obs)
            done = terminated or truncated
        again = rollout_wrapped(env, seed)
        assert np.array_equal(np.array(observations), again)


def rollout_wrapped(env, seed):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    observations, done = [obs], False
    while not done:
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 8).astype(np.float32))
        observations.append(obs)
        done = terminated or truncated
    return np.array(observations)


def test_env_bandwidth_scored_wrapper_residual_margin_helps_an_urgent_transfer():
    # a transfer that EDF would just finish at the forecast gets more than that with a positive action
    trace = pd.DataFrame({"mbps": np.full(30, 10.0)})
    env = ScoredAllocationWrapper(BandwidthAllocationEnv(traces=[trace], arrival_rate=1e-9, history=4))
    env.reset(seed=0)
    base = env.unwrapped
    base.active[:2], base.remaining[:2], base.deadline[:2], base.priority[:2] = True, [4.0, 50.0], [1, 5], 1.0
    env._observation(base._observation())
    assert env.shares(np.zeros(8)) == pytest.approx([0.4, 0.6] + [0.0] * 6)
    assert env.shares(np.array([0.5] + [0.0] * 7))[0] == pytest.approx(0.4 * 2.0)  # exp(ln 4 / 2) = 2


def test_env_bandwidth_tiny_ppo_on_scored_wrapper_starts_at_edf():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = ScoredAllocationWrapper(small_env())
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0, verbose=0)
    # SB3 initialises the action head near zero: the untrained deterministic policy is ~EDF
    untrained = run_episode(env, lambda obs: model.predict(obs, deterministic=True)[0], seed=0)
    edf = run_episode(small_env(), EarliestDeadlineFirst(), seed=0)
    assert untrained["return"] == pytest.approx(edf["return"], rel=0.02)
    model.learn(total_timesteps=256)
    assert np.isfinite(
        run_episode(env, lambda obs: model.predict(obs, deterministic=True)[0], seed=0)["return"]
    )


def test_env_bandwidth_paired_baseline_reward_is_zero_for_the_baseline_itself():
    from stable_baselines3.common.env_util import make_vec_env

    def make():
        env = ScoredAllocationWrapper(small_env(max_steps=15), margin=1.2)
        return PairedBaselineReward(env, EarliestDeadlineFirst(margin=1.2))

    venv = make_vec_env(make, n_envs=2, seed=3)
    venv.reset()
    for _ in range(40):  # crosses auto-resets: the shadow replays the same episodes
        _, rewards, _, infos = venv.step(np.zeros((2, 8), dtype=np.float32))
        assert np.all(rewards == 0.0) and all("env_reward" in info for info in infos)
    env = make()
    env.reset(seed=0)
    _, reward, *_, info = env.step(np.full(8, -1.0, dtype=np.float32))
    edf = EarliestDeadlineFirst(margin=1.2)
    shadow = BandwidthAllocationEnv(**{**SMALL, "max_steps": 15})
    shadow.reset(seed=int(np.random.default_rng(0).integers(2**31 - 1)))
    _, baseline, *_ = shadow.step(allocator_action(shadow, edf))
    assert reward == pytest.approx(info["env_reward"] - baseline)


def test_env_bandwidth_arrival_log_is_the_episodes_workload_whatever_the_actions():
    """The log lets the same episode be replayed elsewhere (over AMST in the simulator)."""

    def log(action_of):
        env = small_env()
        env.reset(seed=5)
        while env.t < env.end:
            env.step(action_of(env))
        return env.arrival_log, env.metrics()["arrived"]

    idle, arrived = log(lambda env: np.zeros(env.max_transfers, dtype=np.float32))
    edf, _ = log(lambda env: allocator_action(env, EarliestDeadlineFirst()))
    assert idle == edf and len(idle) == arrived > 0
    steps = [step for step, *_ in idle]
    assert steps == sorted(steps) and steps[0] >= 0
    assert all(size > 0 and deadline >= 2 and priority in PRIORITIES for _, size, deadline, priority in idle)


@pytest.mark.parametrize("normalised", [False, True])
def test_env_bandwidth_learned_allocator_acts_exactly_as_the_policy_in_the_wrapper(tmp_path, normalised):
    """Saved and loaded, a trained policy allocates from (history, transfers) alone as it does
    inside the wrapper: same episode, same return, to the bit."""
    import json

    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    wrapped = ScoredAllocationWrapper(small_env())
    model = PPO("MlpPolicy", wrapped, n_steps=128, batch_size=64, n_epochs=1, seed=0, verbose=0)
    model.learn(total_timesteps=256)  # a few updates: its actions are no longer EDF's
    size = wrapped.observation_space.shape[0]
    mean = np.linspace(0.0, 0.5, size) if normalised else None
    var = np.linspace(0.5, 2.0, size) if normalised else None
    settings = dict(
        mode="residual", demand_scale=float(np.log(4.0)), margin=1.0, reorder=4.0, logit_scale=3.0
    )
    settings |= {
        "obs_mean": None if mean is None else mean.tolist(),
        "obs_var": None if var is None else var.tolist(),
    }
    model.policy.save(str(tmp_path / "policy.zip"))
    (tmp_path / "policy.json").write_text(json.dumps(settings))

    def act(obs):
        if normalised:
            obs = np.clip((obs - mean.astype(np.float32)) / np.sqrt(var.astype(np.float32) + 1e-8), -10, 10)
        return model.policy.predict(obs.astype(np.float32), deterministic=True)[0]

    learned = LearnedAllocator.load(tmp_path / "policy")
    for seed in range(2):
        direct = run_episode(wrapped, act, seed=seed)
        assert run_episode(small_env(), learned, seed=seed) == direct
        assert direct != run_episode(small_env(), EarliestDeadlineFirst(), seed=seed)


def test_env_bandwidth_learned_allocator_serves_the_earliest_deadlines_when_slots_run_out(tmp_path):
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", ScoredAllocationWrapper(small_env()), n_steps=64, batch_size=64, seed=0)
    settings = dict(mode="residual", demand_scale=1.0, margin=1.0, reorder=4.0, logit_scale=3.0)
    learned = LearnedAllocator(model.policy, settings)
    transfers = [Transfer(5.0, 20 - i, 1.0) for i in range(10)]  # deadlines 20, 19, ..., 11
    shares = learned.allocate(np.full(5, 2.0), transfers, 1.0, history=[2.0] * 3).shares
    assert np.all(shares[:2] == 0) and shares[2:].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 8 capacity samples"):
        learned.env.set_state([1.0] * 3, transfers[:2])
    with pytest.raises(ValueError, match=r"observations are \(\d+,\), but the policy's observations"):
        LearnedAllocator(model.policy, settings, max_transfers=4)  # trained with 8 slots
