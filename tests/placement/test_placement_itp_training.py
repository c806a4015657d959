"""Validation split, admission control, the host-scoring policy and the training experiment, at toy size."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from novacron.placement.cluster import load_tasks, split_tasks
from novacron.placement.heuristics import (
    DEFER,
    AdmissionNearestFitPolicy,
    NearestFitPolicy,
    resource_time,
    run_episode,
)
from novacron.placement.rl import FastMaskedPolicy, HostScoringExtractor, host_scoring_policy
from novacron.placement.scenario import Scenario
from novacron.sim.envs.placement import HOST_FEATURES, PlacementEnv

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_hosts": 6, "n_tasks": 60, "load": 0.9}


def test_placement_fit_val_test_splits_are_disjoint_and_time_ordered():
    tasks = load_tasks()
    fit, val, train, test = (split_tasks(tasks, s) for s in ("fit", "val", "train", "test"))
    assert len(fit) + len(val) == len(train) and len(train) + len(test) == len(tasks)
    assert set(fit.names).isdisjoint(val.names) and set(val.names).isdisjoint(test.names)
    assert fit.arrival.max() <= val.arrival.min() and val.arrival.max() <= test.arrival.min()
    with pytest.raises(ValueError, match="split must be"):
        split_tasks(tasks, "validation")


def test_placement_admission_control_defers_exactly_the_long_big_tasks():
    sim = Scenario(n_hosts=8, n_tasks=150, load=0.9).episode(seed=3)
    policy = AdmissionNearestFitPolicy(threshold=0.05)
    nearest = NearestFitPolicy()
    seen = 0
    while not sim.done and seen < 200:
        choice = policy.select(sim)
        if resource_time(sim, sim.current) > 0.05:
            assert choice == DEFER
            sim.defer()
        else:
            assert choice == nearest.select(sim)
            sim.place(choice)
        seen += 1
    # an infinite threshold is plain nearest_fit
    a = run_episode(Scenario(n_hosts=8, n_tasks=150).episode(seed=1), AdmissionNearestFitPolicy(np.inf))
    b = run_episode(Scenario(n_hosts=8, n_tasks=150).episode(seed=1), NearestFitPolicy())
    assert a.score == b.score and a.defers == 0


def test_placement_env_extra_features_and_load_draw():
    env = PlacementEnv(**SMALL, loads=(0.5, 1.0))
    loads = set()
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        loads.add(info["load"])
        hosts = obs[: env.max_hosts * len(HOST_FEATURES)].reshape(env.max_hosts, len(HOST_FEATURES))
        col = {name: i for i, name in enumerate(HOST_FEATURES)}
        sim = env.sim
        rtt = sim.host_rtt_ms[sim.tasks.origin[sim.current]]
        assert np.array_equal(hosts[:, col["local"]] == 1, rtt == rtt.min())
        # a host where the task fits now also fits it once running tasks have left
        assert (hosts[:, col["fits_after_release"]] >= hosts[:, col["fits"]]).all()
    assert loads == {0.5, 1.0}
    obs, info = env.reset(seed=0, options={"load": 0.7})
    assert info["load"] == 0.7


def test_placement_host_scoring_policy_trains_saves_and_fast_path_matches(tmp_path):
    from sb3_contrib import MaskablePPO

    env = PlacementEnv(**SMALL)
    kwargs = {"max_hosts": env.max_hosts, "host_features": len(HOST_FEATURES), "hidden": 16}
    model = MaskablePPO(
        host_scoring_policy(),
        env,
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        policy_kwargs=kwargs,
        seed=0,
        device="cpu",
    )
    model.learn(64)
    path = tmp_path / "hs.zip"
    model.save(str(path))
    loaded = MaskablePPO.load(str(path), device="cpu")
    assert isinstance(loaded.policy.features_extractor.inner, HostScoringExtractor)
    for a, b in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    # the heads start near zero (near-ties); spread the logits so argmax comparisons are meaningful
    with torch.no_grad():
        for head in (
            loaded.policy.features_extractor.inner.host_score,
            loaded.policy.features_extractor.inner.defer_net[-1],
        ):
            head.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    model = loaded
    fast = FastMaskedPolicy(loaded)
    assert fast._host_scoring is not None  # numpy path
    obs, _ = env.reset(seed=4)
    with torch.no_grad():
        torch_logits = fast.net(torch.as_tensor(obs).reshape(1, -1))[0].numpy()
    assert np.allclose(fast.logits(obs), torch_logits, atol=1e-5)
    done, steps = False, 0
    while not done and steps < 40:
        mask = env.action_masks()
        expected, _ = model.predict(obs, action_masks=mask, deterministic=True)
        got, _ = fast.predict(obs, action_masks=mask)
        logits = fast.logits(obs)
        # identical hosts tie exactly; then either of them is the mode
        assert mask[got] and logits[got] >= logits[int(expected)] - 1e-5
        obs, _, done, _, _ = env.step(got)
        steps += 1
    # slot order does not matter: permuting hosts permutes their logits
    net = loaded.policy.features_extractor.inner
    hosts = obs[: env.max_hosts * len(HOST_FEATURES)].reshape(env.max_hosts, len(HOST_FEATURES))
    perm = np.roll(np.arange(env.max_hosts), 2)
    permuted = np.concatenate([hosts[perm].ravel(), obs[env.max_hosts * len(HOST_FEATURES) :]])
    with torch.no_grad():
        a = net(torch.as_tensor(obs).reshape(1, -1))[0].numpy()
        b = net(torch.as_tensor(permuted).reshape(1, -1))[0].numpy()
    assert np.allclose(a[: env.max_hosts][perm], b[: env.max_hosts], atol=1e-5)
    assert np.isclose(a[env.max_hosts], b[env.max_hosts], atol=1e-5)


def test_placement_train_experiment_imitates_then_trains_and_plots(tmp_path):
    train = runpy.run_path(str(ROOT / "experiments" / "itp_train.py"))
    out = tmp_path / "runs" / "tiny"
    argv = ["--hosts", "6", "--tasks", "40", "--timesteps", "64", "--n-steps", "32", "--batch-size", "16"]
    argv += [
        "--eval-every",
        "32",
        "--val-seeds",
        "1",
        "--val-loads",
        "0.9",
        "--loads",
        "0.9",
        "--n-epochs",
        "1",
    ]
    argv += [
        "--bc-teacher",
        "admission_nearest_fit",
        "--bc-episodes",
        "2",
        "--bc-epochs",
        "2",
        "--hidden",
        "16",
    ]
    summary = train["main"]([*argv, "--out", str(out)])
    for name in ("best.zip", "last.zip", "imitation.zip", "learning_curve.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert 0 <= summary["best_val_score"] <= 1  # toy budget: plumbing, not quality
    curves = runpy.run_path(str(ROOT / "experiments" / "itp_learning_curves.py"))
    argv = ["--runs", str(tmp_path / "runs"), "--out", str(tmp_path), "--hosts", "6", "--tasks", "40"]
    df = curves["main"]([*argv, "--val-seeds", "1"])
    assert (tmp_path / "learning_curves.png").stat().st_size > 0 and len(df) >= 2


def test_placement_dqn_experiment_learns_from_demonstrations_then_online(tmp_path):
    train = runpy.run_path(str(ROOT / "experiments" / "itp_train_dqn.py"))
    out = tmp_path / "dqn"
    argv = ["--hosts", "6", "--tasks", "40", "--loads", "0.9", "--val-loads", "0.9", "--val-seeds", "1"]
    argv += ["--demo-episodes", "1", "--pretrain-steps", "20", "--timesteps", "120", "--eval-every", "60"]
    summary = train["main"]([*argv, "--out", str(out)])
    for name in ("best.zip", "last.zip", "config.json", "learning_curve.csv", "summary.json"):
        assert (out / name).stat().st_size > 0
    assert summary["demo_transitions"] > 0 and summary["online_timesteps"] == 120
    assert 0 <= summary["best_val_score"] <= 1  # toy budget: plumbing, not quality


def test_placement_potential_shaping_telescopes_to_the_score():
    """With gamma = 1 the shaped return equals the unshaped one (phi is 0 at the start and at the end)."""
    env = PlacementEnv(**SMALL, shaping=2.0, shaping_gamma=1.0)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    shaped, unshaped, done, info = 0.0, 0.0, False, {}
    while not done:
        mask = env.action_masks()
        _, reward, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
        shaped += reward
        unshaped += info["unshaped_reward"]
    assert shaped == pytest.approx(unshaped, abs=1e-9)
    assert unshaped / info["metrics"]["tasks"] == pytest.approx(info["metrics"]["score"])


def test_placement_bc_penalty_pulls_every_ppo_update_towards_the_teacher():
    from sb3_contrib import MaskablePPO

    train = runpy.run_path(str(ROOT / "experiments" / "itp_train.py"))
    env = PlacementEnv(**SMALL)
    kwargs = {"max_hosts": env.max_hosts, "host_features": len(HOST_FEATURES), "hidden": 16}
    model = MaskablePPO(host_scoring_policy(), env, n_steps=32, policy_kwargs=kwargs, seed=0, device="cpu")
    data = train["collect_teacher"](env, "nearest_fit", 1, 0.99, 0)
    obs, actions, masks = (torch.as_tensor(data[k]) for k in ("obs", "actions", "masks"))

    def teacher_log_likelihood() -> float:
        with torch.no_grad():
            return float(model.policy.evaluate_actions(obs, actions, action_masks=masks)[1].mean())

    def zero_gradient_steps(n: int) -> None:  # optimiser steps as PPO takes them, with a zero PPO loss
        for _ in range(n):
            model.policy.optimizer.zero_grad()
            for p in model.policy.parameters():
                p.grad = torch.zeros_like(p)
            model.policy.optimizer.step()

    before = teacher_log_likelihood()
    zero_gradient_steps(5)
    assert teacher_log_likelihood() == before  # plain PPO step: no gradient, no change
    train["add_bc_penalty"](model, data, 1.0, 32, 0)
    zero_gradient_steps(30)
    assert teacher_log_likelihood() > before + 0.05
