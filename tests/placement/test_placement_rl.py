"""Masked DQN and fast masked inference (novacron.placement.rl), at toy size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from novacron.placement.rl import (
    DQNConfig,
    FastMaskedPolicy,
    MaskedDQN,
    large_margin_loss,
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


# the CLI trains the DQfD recipe now: tests/placement/test_placement_dqn_cli.py


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


# ---------------------------------------------------------------------------- masking, behaviourally


class ForbiddenActionEnv:
    """Four-step episodes; action 0 is never allowed, action 1 pays 1, action 2 pays 0.

    Observation: one-hot of the step. With ``gamma`` the true ``Q(t, 1)`` is
    ``sum_{k < 4 - t} gamma^k`` (at most 2 for gamma 0.5), whatever Q(., 0) is.
    """

    n_actions, horizon = 3, 4

    def __init__(self) -> None:
        self.t, self.taken = 0, []

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.horizon, dtype=np.float32)
        obs[min(self.t, self.horizon - 1)] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._obs(), {}

    def action_masks(self) -> np.ndarray:
        return np.array([False, True, True])

    def step(self, action):
        self.taken.append(int(action))
        self.t += 1
        return self._obs(), float(action == 1), self.t >= self.horizon, False, {}


def _forbidden_q_dqn(bias: float = 100.0, **overrides) -> MaskedDQN:
    """A DQN whose (online and target) Q of the forbidden action 0 starts at ``bias`` everywhere."""
    settings = {
        "hidden": (16,),
        "gamma": 0.5,
        "learning_rate": 1e-2,
        "batch_size": 32,
        "learning_starts": 32,
        "train_freq": 1,
        "target_update_interval": 50,
        "buffer_size": 1000,
        "seed": 4,
        **overrides,
    }
    model = MaskedDQN(ForbiddenActionEnv.horizon, ForbiddenActionEnv.n_actions, DQNConfig(**settings))
    with torch.no_grad():
        for net in (model.q_net, model.q_target):
            net[-1].weight[0].zero_()
            net[-1].bias[0] = bias
    return model


def test_placement_rl_dqn_loss_uses_the_next_state_mask():
    # zero Q everywhere except the forbidden action 0 (Q = 100): the target of (s, a=1, r=1) must be
    # 1 + 0.9 * 0, not 1 + 0.9 * 100, in plain and in double DQN
    for double in (False, True):
        model = _forbidden_q_dqn(gamma=0.9, double=double)
        with torch.no_grad():
            for net in (model.q_net, model.q_target):
                for param in net.parameters():
                    param.zero_()
                net[-1].bias[0] = 100.0
        batch = {
            "obs": torch.zeros(2, 4),
            "actions": torch.tensor([1, 2]),
            "rewards": torch.tensor([1.0, 1.0]),
            "next_obs": torch.zeros(2, 4),
            "next_masks": torch.tensor([[False, True, True]] * 2),
            "dones": torch.zeros(2),
        }
        assert float(model.loss(batch).detach()) == pytest.approx(0.5)  # smooth L1 of (0 - 1)
        unmasked = {**batch, "next_masks": torch.ones(2, 3, dtype=torch.bool)}
        assert float(model.loss(unmasked).detach()) > 80.0  # what the mask prevents


def test_placement_rl_dqn_learning_never_bootstraps_from_a_forbidden_action():
    # Q(., 0) = 100 throughout (its output row gets no gradient: action 0 is never taken). With the
    # mask in the target's max, Q(t, 1) converges to its true value (<= 2); bootstrapping from
    # action 0 would push it towards 1 + 0.5 * 100. The mask in the action choice keeps the agent
    # from ever taking action 0, though its Q is the largest, greedy or exploring.
    env = ForbiddenActionEnv()
    model = _forbidden_q_dqn().learn(env, 1200, seed=0)
    assert 0 not in env.taken and {1, 2} <= set(env.taken)
    with torch.no_grad():
        q = model.q_net(torch.eye(4))
    assert torch.all(q[:, 0] > 90.0)  # the forbidden action still looks best, unmasked
    true_q1 = torch.tensor([1.875, 1.75, 1.5, 1.0])
    assert torch.allclose(q[:, 1], true_q1, atol=0.3), q[:, 1]
    assert all(model.predict(obs.numpy(), action_masks=env.action_masks())[0] == 1 for obs in torch.eye(4))


def test_placement_rl_large_margin_loss_counts_allowed_actions_only():
    q = torch.tensor([[9.0, 1.0, 0.5], [0.0, 1.0, 1.0]])
    mask = torch.tensor([[False, True, True], [True, True, True]])
    actions = torch.tensor([1, 1])
    loss = large_margin_loss(q, actions, mask, margin=0.8)
    # row 0: the demonstrated action leads the allowed ones by 0.5 < 0.8 -> 0.3 (masked 9.0 ignored);
    # row 1: a tie with action 2 -> the full margin
    assert torch.allclose(loss, torch.tensor([0.3, 0.8]))
    assert float(large_margin_loss(q, actions, mask, margin=0.4)[0]) == 0.0


def test_placement_rl_dueling_host_scoring_dqn_with_demonstrations(tmp_path):
    from novacron.placement.heuristics import DEFER, make_policy
    from novacron.placement.rl import HostScoringQNet, MaskedReplayBuffer
    from novacron.sim.envs.placement import HOST_FEATURES

    env = PlacementEnv(**SMALL)
    n_obs, n_act = env.observation_space.shape[0], env.action_space.n
    config = DQNConfig(
        hidden=(16,),
        arch="host_scoring",
        max_hosts=env.max_hosts,
        host_features=len(HOST_FEATURES),
        margin_weight=1.0,
        learning_rate=3e-3,
        batch_size=16,
        target_update_interval=20,
        seed=5,
    )
    model = MaskedDQN(n_obs, n_act, config)
    assert isinstance(model.q_net, HostScoringQNet)
    demos = MaskedReplayBuffer(500, n_obs, n_act)
    obs, _ = env.reset(seed=1)
    teacher = make_policy("nearest_fit")  # learnable by a slot-order-free network (unlike "first slot")
    teacher.reset(env.sim, 0)
    for _ in range(40):
        mask = env.action_masks()
        choice = teacher.select(env.sim)
        action = env.defer_action if choice == DEFER else int(choice)
        next_obs, reward, done, _, _ = env.step(action)
        demos.add(obs, action, reward, next_obs, env.action_masks(), done, mask=mask, demo=True)
        obs = next_obs
        assert not done
    batch = model.sample(None, demos)
    assert len(batch["actions"]) == 16 and bool(batch["demo"].all())
    model.pretrain(demos, 200)
    # the margin loss taught the demonstrated choices
    agree = sum(
        model.predict(demos.obs[i], action_masks=demos.masks[i])[0] == demos.actions[i] for i in range(40)
    )
    assert agree >= 36
    mixed = MaskedReplayBuffer(100, n_obs, n_act)
    mixed.add(demos.obs[0], 0, 0.0, demos.obs[1], demos.masks[1], False)
    batch = model.sample(mixed, demos)
    assert int(batch["demo"].sum()) == 4  # demo_fraction 0.25 of 16
    # fast inference (numpy advantages) and save/load agree with the torch Q argmax
    path = tmp_path / "dqn.zip"
    model.save(path)
    loaded, fast = MaskedDQN.load(path), FastMaskedPolicy(model)
    obs, _ = env.reset(seed=3)
    for _ in range(30):
        mask = env.action_masks()
        action = model.predict(obs, action_masks=mask)[0]
        assert loaded.predict(obs, action_masks=mask)[0] == action
        # the numpy path ranks advantages without V(s): equal up to float rounding of V + A
        with torch.no_grad():
            q = model.q_net(torch.as_tensor(obs).reshape(1, -1))[0].numpy()
        assert q[fast.predict(obs, action_masks=mask)[0]] == pytest.approx(q[action], abs=1e-4)
        obs, _, done, _, _ = env.step(action)
        if done:
            break
