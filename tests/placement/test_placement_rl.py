"""Masked DQN and fast masked inference (novacron.placement.rl), at toy size."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from novacron.cli import itp_cmd
from novacron.placement.rl import (
    DQNConfig,
    FastMaskedPolicy,
    MaskedDQN,
    masked_argmax,
    masked_max,
    td_targets,
)
from novacron.sim.envs.placement import PlacementEnv

SMALL = {"n_hosts": 6, "n_tasks": 60, "load": 0.9}


def test_placement_rl_masked_argmax_and_max_skip_masked_entries():
    q = torch.tensor([[5.0, 1.0, 2.0], [0.0, -3.0, 9.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[False, True, True], [True, True, False], [False, False, False]])
    assert masked_argmax(q[:2], mask[:2]).tolist() == [2, 0]
    assert masked_max(q, mask).tolist() == [2.0, 0.0, 0.0]  # nothing allowed -> 0


def test_placement_rl_td_target_ignores_masked_next_actions():
    # the masked action 0 has by far the largest target Q; it must not enter the target
    rewards = torch.tensor([1.0, 0.5, 0.0])
    dones = torch.tensor([0.0, 0.0, 1.0])
    next_q_target = torch.tensor([[100.0, 2.0, 3.0], [100.0, 4.0, -1.0], [100.0, 7.0, 7.0]])
    next_mask = torch.tensor([[False, True, True], [False, True, True], [False, True, True]])
    gamma = 0.9
    plain = td_targets(rewards, dones, next_q_target, next_mask, gamma)
    assert torch.allclose(plain, torch.tensor([1.0 + 0.9 * 3.0, 0.5 + 0.9 * 4.0, 0.0]))
    # double DQN: the online net prefers masked action 0, then action 1 among allowed ones
    next_q_online = torch.tensor([[50.0, 9.0, 1.0], [50.0, 0.0, 1.0], [50.0, 0.0, 0.0]])
    double = td_targets(rewards, dones, next_q_target, next_mask, gamma, next_q_online)
    assert torch.allclose(double, torch.tensor([1.0 + 0.9 * 2.0, 0.5 + 0.9 * -1.0, 0.0]))
    # without masking the target would have been inflated by the masked action
    unmasked = td_targets(rewards, dones, next_q_target, torch.ones_like(next_mask), gamma)
    assert (unmasked[:2] > plain[:2] + 80).all()


class MaskAuditEnv(PlacementEnv):
    """Records every action taken and whether it was allowed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.taken: list[tuple[int, bool]] = []

    def step(self, action):
        self.taken.append((int(action), bool(self.action_masks()[int(action)])))
        return super().step(action)


def _tiny_dqn(env, steps: int = 250) -> MaskedDQN:
    config = DQNConfig(
        hidden=(32, 32),
        learning_starts=50,
        train_freq=2,
        batch_size=32,
        target_update_interval=100,
        buffer_size=1000,
        seed=3,
    )
    model = MaskedDQN(env.observation_space.shape[0], env.action_space.n, config)
    return model.learn(env, steps, seed=0, reset_options={"load": 0.9})


def test_placement_rl_dqn_trains_deterministically_and_never_takes_a_masked_action():
    env = MaskAuditEnv(**SMALL)
    model = _tiny_dqn(env)
    assert len(env.taken) == 250 and all(ok for _, ok in env.taken)
    assert len(model.episode_returns) >= 2
    # greedy evaluation stays inside the mask too
    obs, _ = env.reset(seed=11)
    done = False
    while not done:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, info = env.step(action)
        assert not info["invalid_action"]
    # same seed, same weights
    again = _tiny_dqn(MaskAuditEnv(**SMALL))
    for a, b in zip(model.q_net.parameters(), again.q_net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_placement_rl_exploration_draws_only_allowed_actions():
    model = MaskedDQN(4, 5, DQNConfig(hidden=(8,), seed=1))
    mask = np.array([False, True, False, False, True])
    picks = {model.act(np.zeros(4, dtype=np.float32), mask, epsilon=1.0) for _ in range(200)}
    assert picks == {1, 4}


def test_placement_rl_dqn_save_load_round_trip(tmp_path):
    env = PlacementEnv(**SMALL)
    model = MaskedDQN(env.observation_space.shape[0], env.action_space.n, DQNConfig(hidden=(16,), seed=2))
    path = tmp_path / "dqn.pt"
    model.save(path)
    loaded = MaskedDQN.load(path)
    obs, _ = env.reset(seed=0)
    fast = FastMaskedPolicy(loaded)
    mask = env.action_masks()
    assert model.predict(obs, action_masks=mask)[0] == loaded.predict(obs, action_masks=mask)[0]
    assert fast.predict(obs, action_masks=mask)[0] == model.predict(obs, action_masks=mask)[0]


def test_placement_rl_fast_ppo_inference_matches_sb3_predict():
    from sb3_contrib import MaskablePPO

    env = PlacementEnv(**SMALL)
    model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(64)
    fast = FastMaskedPolicy(model)
    assert fast._layers is not None  # the numpy path is in use
    obs, _ = env.reset(seed=5)
    with torch.no_grad():
        torch_logits = fast.net(torch.as_tensor(obs).reshape(1, -1))[0].numpy()
    assert np.allclose(fast.logits(obs), torch_logits, atol=1e-5)
    compared, done = 0, False
    while not done and compared < 40:
        mask = env.action_masks()
        expected, _ = model.predict(obs, action_masks=mask, deterministic=True)
        got, _ = fast.predict(obs, action_masks=mask)
        assert got == int(expected) and mask[got]
        obs, _, done, _, _ = env.step(got)
        compared += 1
    # masking matters: with only defer allowed, defer is chosen
    only_defer = np.zeros(env.action_space.n, dtype=bool)
    only_defer[-1] = True
    assert fast.predict(obs, action_masks=only_defer)[0] == env.action_space.n - 1


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    itp_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_placement_rl_cli_trains_and_evaluates_masked_dqn(tmp_path, capsys):
    small = ["--hosts", "6", "--tasks", "60", "--load", "0.9"]
    out = tmp_path / "dqn.pt"
    argv = ["itp", "train", "--algo", "masked_dqn", "--timesteps", "200", "--out", str(out)]
    assert _run_cli([*argv, "--train-loads", "0.5,0.9", "--checkpoint-episodes", "1", "--quiet", *small]) == 0
    assert out.is_file() and (tmp_path / "dqn" / "progress.csv").is_file()
    capsys.readouterr()
    argv = ["itp", "evaluate", "--policy", "masked_dqn", "--model", str(out), "--episodes", "2", "--json"]
    assert _run_cli([*argv, *small]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "masked_dqn" and 0 < result["acceptance_rate"] <= 1
    assert 0 < result["decision_latency_us"] < 20_000  # loose: shared CI cores; see the report for timings


def test_placement_rl_compare_experiment_runs_a_dqn_model(tmp_path):
    import runpy
    from pathlib import Path

    env = PlacementEnv(**SMALL)
    path = tmp_path / "dqn.pt"
    MaskedDQN(env.observation_space.shape[0], env.action_space.n, DQNConfig(hidden=(16,))).save(path)
    root = Path(__file__).resolve().parents[2]
    module = runpy.run_path(str(root / "experiments" / "itp_compare.py"))
    argv = ["--loads", "0.9", "--seeds", "1", "--hosts", "6", "--tasks", "40", "--out", str(tmp_path)]
    table = module["main"]([*argv, "--dqn-model", str(path)])
    row = table[table["policy"] == "masked_dqn"].iloc[0]
    assert 0 < row["acceptance_rate"] <= 1 and row["decision_latency_us"] > 0
