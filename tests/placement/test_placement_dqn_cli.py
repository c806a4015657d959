"""``novacron itp train --algo masked_dqn`` trains the reported recipe (placement.dqfd), at toy size."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import novacron.sim.envs.placement as placement_env
from novacron.cli import itp_cmd
from novacron.placement.rl import FastMaskedPolicy, HostScoringQNet, MaskedDQN, host_scoring_policy
from novacron.sim.envs.placement import HOST_FEATURES, PlacementEnv

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--hosts", "6", "--tasks", "60", "--load", "0.9"]
#: from scratch a few hundred margin-loss steps on nearest_fit make a toy agent that places tasks
#: (patient_nearest_fit's many defers teach a toy agent to defer everything: no masking to check)
TOY_RECIPE = ["--demo-teacher", "nearest_fit", "--demo-episodes", "1", "--pretrain-steps", "300"]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    itp_cmd.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


class AuditEnv(PlacementEnv):
    """A ``PlacementEnv`` recording every step (of all instances): the action, and whether it was allowed."""

    taken: list[tuple[int, bool]] = []

    def step(self, action):
        AuditEnv.taken.append((int(action), bool(self.action_masks()[int(action)])))
        return super().step(action)


@pytest.fixture
def audited(monkeypatch) -> list[tuple[int, bool]]:
    """Every environment the CLI makes (``itp_cmd.make_env`` imports the class per call) is audited."""
    AuditEnv.taken = []
    monkeypatch.setattr(placement_env, "PlacementEnv", AuditEnv)
    return AuditEnv.taken


def _greedy_episode(policy: FastMaskedPolicy, seed: int) -> dict[str, int]:
    """Counts over one test episode: steps, placements, masked choices, and steps where the
    unmasked argmax was a masked action (so that masking had to decide)."""
    env = PlacementEnv(n_hosts=6, n_tasks=60, load=0.9, split="test")
    obs, _ = env.reset(seed=seed)
    counts = {"steps": 0, "placed": 0, "masked_choice": 0, "mask_decided": 0}
    done = False
    while not done:
        mask = env.action_masks()
        action, _ = policy.predict(obs, action_masks=mask)
        counts["steps"] += 1
        counts["placed"] += action != env.defer_action
        counts["masked_choice"] += not mask[action]
        counts["mask_decided"] += not mask[int(np.argmax(policy.logits(obs)))]
        obs, _, done, _, _ = env.step(action)
    return counts


@pytest.mark.timeout(120)
def test_placement_dqn_cli_trains_host_scoring_dqfd_and_evaluate_loads_it(tmp_path, capsys, audited):
    out = tmp_path / "dqn.pt"
    argv = ["itp", "train", "--algo", "masked_dqn", "--timesteps", "300", "--out", str(out), "--quiet"]
    argv += ["--train-loads", "0.5,0.9", "--checkpoint-episodes", "1", *TOY_RECIPE]
    assert run([*argv, *SMALL]) == 0
    assert "300 online steps" in capsys.readouterr().out

    model = MaskedDQN.load(out)
    assert isinstance(model.q_net, HostScoringQNet)  # the dueling host-scoring network, not the flat MLP
    assert model.config.arch == "host_scoring" and model.config.margin_weight > 0  # DQfD's margin loss
    assert model.num_timesteps == 300
    progress = pd.read_csv(tmp_path / "dqn" / "progress.csv")
    assert len(progress) >= 1 and set(progress["load"]) <= {0.5, 0.9}
    # training (demonstrations, exploration, greedy steps) never executed a masked action
    assert len(audited) > 300 and all(allowed for _, allowed in audited)

    audited.clear()
    argv = ["itp", "evaluate", "--policy", "masked_dqn", "--model", str(out), "--episodes", "2", "--json"]
    assert run([*argv, *SMALL]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "masked_dqn" and result["seeds"] == [0, 1]
    for key in ("score", "acceptance_rate", "decision_latency_us"):
        assert math.isfinite(result[key]) and math.isfinite(result[f"{key}_ci95"])
    assert result["acceptance_rate"] > 0.5 and result["decisions"] == len(audited)
    assert all(allowed for _, allowed in audited)

    # the greedy agent places tasks, masking decided often, and it never chose a masked action
    counts = _greedy_episode(FastMaskedPolicy(model), seed=0)
    assert counts["placed"] > 0 and counts["mask_decided"] > 0 and counts["masked_choice"] == 0


def _untrained_ppo(tmp_path: Path, policy) -> Path:
    """A MaskablePPO saved without training (its weights are all the warm start needs)."""
    from sb3_contrib import MaskablePPO

    env = PlacementEnv(n_hosts=6, n_tasks=60, load=0.9)
    kwargs = (
        {"max_hosts": env.max_hosts, "host_features": len(HOST_FEATURES)} if policy != "MlpPolicy" else None
    )
    model = MaskablePPO(policy, env, n_steps=32, policy_kwargs=kwargs, seed=5, device="cpu")
    path = tmp_path / f"ppo_{'mlp' if policy == 'MlpPolicy' else 'hs'}.zip"
    model.save(str(path))
    return path


@pytest.mark.timeout(120)
def test_placement_dqn_cli_init_copies_the_ppo_actor_into_the_advantages(tmp_path, capsys):
    from sb3_contrib import MaskablePPO

    ppo_path = _untrained_ppo(tmp_path, host_scoring_policy())
    out = tmp_path / "dqn.pt"
    argv = ["itp", "train", "--algo", "masked_dqn", "--init", str(ppo_path), "--out", str(out), "--quiet"]
    # one online step, before learning starts: the saved advantages are the copied actor
    argv += ["--demo-episodes", "0", "--pretrain-steps", "0", "--timesteps", "1"]
    assert run([*argv, *SMALL]) == 0
    dqn = MaskedDQN.load(out)
    actor = MaskablePPO.load(str(ppo_path), device="cpu").policy.features_extractor.inner
    for name, tensor in actor.state_dict().items():
        assert torch.equal(dqn.q_net.scorer.state_dict()[name], tensor), name
    # so the greedy DQN acts as the PPO actor does
    fast_dqn, fast_ppo = (
        FastMaskedPolicy(dqn),
        FastMaskedPolicy(MaskablePPO.load(str(ppo_path), device="cpu")),
    )
    env = PlacementEnv(n_hosts=6, n_tasks=60, load=0.9)
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        mask = env.action_masks()
        action = fast_dqn.predict(obs, action_masks=mask)[0]
        assert action == fast_ppo.predict(obs, action_masks=mask)[0]
        obs, *_ = env.step(action)


def test_placement_dqn_cli_rejects_a_non_host_scoring_init_and_an_unknown_teacher(tmp_path, capsys):
    mlp_path = _untrained_ppo(tmp_path, "MlpPolicy")
    argv = ["itp", "train", "--algo", "masked_dqn", "--out", str(tmp_path / "d.pt"), "--quiet", *SMALL]
    no_demos = ["--demo-episodes", "0", "--timesteps", "1"]
    assert run([*argv, "--init", str(mlp_path), *no_demos, "--pretrain-steps", "0"]) == 2
    assert "host-scoring" in capsys.readouterr().err
    assert run([*argv, *no_demos]) == 2  # default pre-training, nothing to pre-train on
    assert "demonstrations" in capsys.readouterr().err
    assert run([*argv, "--demo-teacher", "oracle", "--timesteps", "1"]) == 2
    assert "oracle" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_placement_dqn_cli_reported_model_still_evaluates_the_same(capsys):
    """``runs/dqn_s0/best.zip`` (written before the recipe moved) loads and scores as in ``dqn/``."""
    model = ROOT / "results" / "itp" / "runs" / "dqn_s0" / "best.zip"
    episodes = ROOT / "results" / "itp" / "dqn" / "compare_episodes.csv"
    if not (model.is_file() and episodes.is_file()):
        pytest.skip("reported DQN model or its test episodes not present")
    argv = ["itp", "evaluate", "--policy", "masked_dqn", "--model", str(model), "--load", "0.5"]
    assert run([*argv, "--episodes", "1", "--json"]) == 0  # default scenario: 16 hosts, 512 tasks, test
    result = json.loads(capsys.readouterr().out)
    rows = pd.read_csv(episodes)
    expected = rows[(rows["policy"] == "masked_dqn") & (rows["load"] == 0.5) & (rows["seed"] == 0)].iloc[0]
    assert result["score"] == pytest.approx(expected["score"], abs=1e-12)
    assert result["acceptance_rate"] == pytest.approx(expected["acceptance_rate"], abs=1e-12)


def test_placement_dqn_cli_options_do_not_import_torch_for_every_command():
    """``novacron`` builds every sub-command's parser; the DQN options' defaults must stay light."""
    import subprocess
    import sys

    code = "import sys, novacron.cli as c; c.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
