"""Experiment: train a MaskablePPO placement policy over a range of loads, selecting on a validation split.

Training episodes come from the ``fit`` part of the pod list (the first 55 %),
each at a load drawn from ``--loads``; every ``--eval-every`` steps the greedy
policy (through :class:`novacron.placement.rl.FastMaskedPolicy`) is scored on
fixed episodes of the ``val`` part (55-70 %) at each of ``--val-loads``, and
the checkpoint with the best mean validation score is kept as ``best.zip``.
The ``test`` part (70-100 %) is never touched here: it is for
``experiments/itp_compare.py``. Writes under ``--out``:

* ``best.zip`` and ``last.zip``: the selected and the final model;
* ``learning_curve.csv``: ``timesteps, seconds, split, load, policy, score, acceptance_rate``
  rows for validation checkpoints (and, once, ``nearest_fit`` on the same validation
  episodes, as a reference line) and ``split=fit`` rows with training-episode scores;
* ``config.json``: the settings.

    nice -n 10 .venv/bin/python experiments/itp_train.py --timesteps 1000000 --seed 0 \\
        --out results/itp/runs/ppo_hs_s0

``--bc-teacher NAME`` first imitates a heuristic (``--bc-epochs``; 0 skips it); with
``--bc-weight W`` every PPO update then also minimises W x the cross-entropy to that
heuristic's actions (:func:`add_bc_penalty`), so fine-tuning cannot drift far from it.
``--keep-checkpoints`` also saves every validated model as ``ckpt_<steps>.zip``, to select
on one validation load afterwards (``best.zip`` is chosen on the mean over ``--val-loads``).

``--policy host_scoring`` (default) uses the permutation-equivariant
:func:`novacron.placement.rl.host_scoring_policy`; ``--policy mlp`` SB3's flat MLP.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np


def _env(split: str, load: float, hosts: int, tasks: int, loads=None, **kwargs):
    from novacron.placement.scenario import Scenario
    from novacron.sim.envs.placement import PlacementEnv

    scenario = Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split=split)
    return PlacementEnv(scenario=scenario, loads=loads, **kwargs)


def add_run_args(parser: argparse.ArgumentParser, seed: int = 0) -> None:
    """The arguments every ITP training run shares: its seed, training loads, validation
    episodes (``start_run`` reads them) and the scenario's size."""
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument(
        "--loads", default="0.5,0.7,0.8,0.9,1.0", help="training loads, one drawn per episode"
    )
    parser.add_argument("--val-loads", default="0.5,0.8,0.9,1.0")
    parser.add_argument(
        "--val-seeds", type=int, default=4, help="validation episodes per load (seeds 0..N-1)"
    )
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)


def start_run(args: argparse.Namespace) -> tuple[list[float], list[float], range]:
    """The run folder with its config.json, one torch thread, and the training and validation
    loads and seeds ``args`` names (shared by the PPO and DQN trainers)."""
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
    loads = [float(x) for x in args.loads.split(",")]
    val_loads = [float(x) for x in args.val_loads.split(",")]
    return loads, val_loads, range(args.val_seeds)


def validate(predictor, envs: dict, seeds) -> dict:
    """Mean score and acceptance per load on the validation episodes (greedy masked actions)."""
    out = {}
    for load, env in envs.items():
        scores, acc = [], []
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            done, info = False, {}
            while not done:
                action, _ = predictor.predict(obs, action_masks=env.action_masks())
                obs, _, done, _, info = env.step(int(action))
            scores.append(info["metrics"]["score"])
            acc.append(info["metrics"]["acceptance_rate"])
        out[load] = (float(np.mean(scores)), float(np.mean(acc)))
    return out


def heuristic_reference(name: str, envs: dict, seeds) -> dict:
    from novacron.placement.heuristics import make_policy, run_episode

    out = {}
    for load, env in envs.items():
        scores, acc = [], []
        for seed in seeds:
            env.reset(seed=seed)
            m = run_episode(env.sim, make_policy(name), seed=seed)
            scores.append(m.score)
            acc.append(m.acceptance_rate)
        out[load] = (float(np.mean(scores)), float(np.mean(acc)))
    return out


class ValidationLog:
    """A run's ``learning_curve.csv`` and its choice of checkpoint on the validation split.

    Rows: the ``references`` heuristics first (step 0), then each validation of the model and
    each training episode. :meth:`check` validates a model, keeps it as ``best.zip`` when its mean
    score beats every earlier candidate's, and prints one line."""

    COLUMNS = ["timesteps", "seconds", "split", "load", "policy", "score", "acceptance_rate"]

    def __init__(self, out: Path, val_envs: dict, val_seeds, references=("nearest_fit",)) -> None:
        self.out, self.val_envs, self.val_seeds = out, val_envs, val_seeds
        self._fh = (out / "learning_curve.csv").open("w", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(self.COLUMNS)
        for name in dict.fromkeys(references):
            for load, (score, acc) in heuristic_reference(name, val_envs, val_seeds).items():
                self._writer.writerow([0, 0.0, "val", load, name, score, acc])
        self.t0 = time.perf_counter()
        self.best: dict = {"score": -np.inf, "timesteps": None, "phase": None}

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def check(
        self, predictor, model, step: int, name: str, *, phase: str = "", candidate: bool = True
    ) -> float:
        """Validate ``predictor`` (``model``'s decisions); returns the mean score over loads."""
        result = validate(predictor, self.val_envs, self.val_seeds)
        seconds = self.seconds()
        for load, (score, acc) in result.items():
            self._writer.writerow([step, f"{seconds:.1f}", "val", load, name, score, acc])
        self._fh.flush()
        mean = float(np.mean([s for s, _ in result.values()]))
        if candidate and mean > self.best["score"]:
            self.best.update(score=mean, timesteps=step, phase=phase or None)
            model.save(self.out / "best.zip")
        best = self.best
        where = f"{best['phase']} {best['timesteps']}" if best["phase"] else f"{best['timesteps']}"
        print(
            (f"{phase:9s} " if phase else "")
            + f"{step:>8d} steps {seconds:6.0f} s  val "
            + " ".join(f"{load:g}:{s:.3f}" for load, (s, _) in result.items())
            + f"  mean {mean:.4f} (best {best['score']:.4f} @ {where})",
            flush=True,
        )
        return mean

    def episode(self, step: int, info: dict, name: str) -> dict:
        """A ``fit`` row for a finished training episode; returns its metrics."""
        m = info.get("metrics", {})
        self._writer.writerow(
            [
                step,
                f"{self.seconds():.1f}",
                "fit",
                info.get("load", ""),
                name,
                m.get("score"),
                m.get("acceptance_rate"),
            ]
        )
        return m

    def close(self) -> None:
        self._fh.close()


def collect_teacher(env, teacher_name: str, episodes: int, gamma: float, seed: int) -> dict:
    """Roll out a heuristic on training episodes: observations, masks, its actions and discounted returns."""
    from novacron.placement.heuristics import DEFER, make_policy

    obs_l, mask_l, act_l, ret_l = [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        teacher = make_policy(teacher_name)
        teacher.reset(env.sim, episode)
        rewards, done = [], False
        while not done:
            choice = teacher.select(env.sim)
            action = env.defer_action if choice == DEFER else int(choice)
            obs_l.append(obs)
            mask_l.append(env.action_masks())
            act_l.append(action)
            obs, reward, done, _, _ = env.step(action)
            rewards.append(reward)
        ret_l.append(discounted_returns(rewards, gamma))
    return imitation_dataset(obs_l, mask_l, act_l, ret_l)


def discounted_returns(rewards: list[float], gamma: float) -> np.ndarray:
    """The return from every step of one episode (the value targets of imitation)."""
    returns, running = np.zeros(len(rewards)), 0.0
    for i in range(len(rewards) - 1, -1, -1):
        running = rewards[i] + gamma * running
        returns[i] = running
    return returns


def imitation_dataset(obs_l: list, mask_l: list, act_l: list, ret_l: list[np.ndarray]) -> dict:
    """Labelled states as the arrays imitation trains on."""
    return {
        "obs": np.asarray(obs_l, dtype=np.float32),
        "masks": np.asarray(mask_l, dtype=bool),
        "actions": np.asarray(act_l, dtype=np.int64),
        "returns": np.concatenate(ret_l).astype(np.float32),
    }


def behaviour_clone(
    model, data: dict, epochs: int, batch_size: int, seed: int, lr: float = 1e-3
) -> list[float]:
    """Fit the policy to the teacher's actions (masked cross-entropy) and the value head to its returns."""
    import torch

    policy = model.policy
    before = [group["lr"] for group in policy.optimizer.param_groups]
    for group in policy.optimizer.param_groups:
        group["lr"] = lr
    policy.set_training_mode(True)
    rng = np.random.default_rng(seed)
    n = len(data["actions"])
    tensors = {k: torch.as_tensor(v) for k, v in data.items()}
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = torch.as_tensor(order[start : start + batch_size])
            values, log_prob, _ = policy.evaluate_actions(
                tensors["obs"][idx], tensors["actions"][idx], action_masks=tensors["masks"][idx]
            )
            value_loss = torch.nn.functional.mse_loss(values.flatten(), tensors["returns"][idx])
            loss = -log_prob.mean() + 0.5 * value_loss / max(float(tensors["returns"].var()), 1.0)
            policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            policy.optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / n)
    policy.set_training_mode(False)
    for group, value in zip(policy.optimizer.param_groups, before, strict=True):
        group["lr"] = value
    return losses


def add_bc_penalty(model, data: dict, weight: float, batch_size: int, seed: int, schedule=None) -> None:
    """Make every PPO update minimise ``PPO loss + weight x cross-entropy to the teacher's actions``.

    The teacher's decisions (``data``, from :func:`collect_teacher`) act as a
    behaviour-cloning regulariser that keeps fine-tuning from drifting away from
    the imitated heuristic (as in DAPG, Rajeswaran et al. 2018, with a constant
    weight): before each optimiser step of PPO, the gradient of the penalty on a
    fresh minibatch of teacher states is added to PPO's (already clipped) gradient.
    ``schedule`` (optional, no arguments) returns the weight to use at each step instead
    of the constant ``weight`` (e.g. annealed with the training steps).
    """
    import torch

    policy, optimizer = model.policy, model.policy.optimizer
    ppo_step = optimizer.step
    rng = np.random.default_rng(seed)
    obs, actions, masks = (torch.as_tensor(data[k]) for k in ("obs", "actions", "masks"))

    def penalised_step(*args, **kwargs):
        idx = torch.as_tensor(rng.integers(0, len(actions), size=batch_size))
        _, log_prob, _ = policy.evaluate_actions(obs[idx], actions[idx], action_masks=masks[idx])
        (-(weight if schedule is None else schedule()) * log_prob.mean()).backward()
        return ppo_step(*args, **kwargs)

    optimizer.step = penalised_step


def critic_warmup(
    model, env, steps: int, gamma: float, epochs: int, batch_size: int, seed: int, lr: float = 1e-3
) -> dict:
    """Fit the value function alone to the current policy's on-policy returns, the actor frozen.

    Rolls out ``model``'s stochastic policy (as PPO samples it) for at least ``steps`` steps of
    whole episodes, then regresses the critic (its MLP and value head, on the features
    computed once with no gradient) onto the discounted Monte Carlo returns for ``epochs``
    passes. The shared features extractor, and so the actor, does not change. Returns the
    explained variance of the returns before and after, and the number of states.
    """
    import torch

    policy = model.policy
    policy.set_training_mode(False)
    obs_l, ret_l = [], []
    episode = 0
    while len(obs_l) < steps:
        obs, _ = env.reset(seed=seed * 100_000 + 50_000 + episode)
        episode += 1
        rewards, done = [], False
        while not done:
            mask = env.action_masks()
            with torch.no_grad():
                action, _, _ = policy(torch.as_tensor(obs[None]), action_masks=mask[None])
            obs_l.append(obs)
            obs, reward, done, _, _ = env.step(int(action[0]))
            rewards.append(reward)
        ret_l.append(discounted_returns(rewards, gamma))
    obs_t = torch.as_tensor(np.asarray(obs_l, dtype=np.float32))
    returns = torch.as_tensor(np.concatenate(ret_l).astype(np.float32))
    with torch.no_grad():
        features = policy.extract_features(obs_t)
        if isinstance(features, tuple):  # separate actor / critic extractors: the critic's
            features = features[1]

    def values(idx) -> torch.Tensor:
        return policy.value_net(policy.mlp_extractor.forward_critic(features[idx])).flatten()

    def explained() -> float:
        with torch.no_grad():
            pred = torch.cat(
                [values(torch.arange(i, min(i + 4096, len(returns)))) for i in range(0, len(returns), 4096)]
            )
        return float(1.0 - (returns - pred).var() / returns.var())

    before = explained()
    params = [*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(returns))
        for start in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[start : start + batch_size])
            loss = torch.nn.functional.mse_loss(values(idx), returns[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            optimizer.step()
    return {
        "states": len(returns),
        "episodes": episode,
        "explained_before": before,
        "explained_after": explained(),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    add_run_args(parser)
    parser.add_argument("--policy", choices=("host_scoring", "mlp"), default="host_scoring")
    parser.add_argument("--eval-every", type=int, default=50_000)
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--ent-coef", type=float, default=0.003)
    parser.add_argument("--n-steps", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument(
        "--bc-teacher", help="warm start: imitate this heuristic first (e.g. admission_nearest_fit)"
    )
    parser.add_argument("--bc-episodes", type=int, default=40)
    parser.add_argument("--bc-epochs", type=int, default=12)
    parser.add_argument("--bc-lr", type=float, default=1e-3)
    parser.add_argument(
        "--bc-weight",
        type=float,
        default=0.0,
        help="during PPO, add this x cross-entropy to --bc-teacher's actions to every update (0: off)",
    )
    parser.add_argument(
        "--bc-weight-final",
        type=float,
        default=None,
        help="anneal the --bc-weight penalty linearly to this over --bc-anneal-steps (default: constant)",
    )
    parser.add_argument(
        "--bc-anneal-steps", type=int, default=None, help="steps of the annealing (default: --timesteps)"
    )
    parser.add_argument(
        "--critic-warmup",
        type=int,
        default=0,
        help="before PPO, fit the value function alone (actor frozen) on this many on-policy steps (0: off)",
    )
    parser.add_argument("--critic-epochs", type=int, default=5, help="passes of the critic warm-up")
    parser.add_argument("--target-kl", type=float, default=None)
    parser.add_argument("--clip-range", type=float, default=0.2)
    parser.add_argument(
        "--init", type=Path, help="start from this model's weights (e.g. a run's imitation.zip)"
    )
    parser.add_argument(
        "--shaping", type=float, default=0.0, help="potential-based shaping weight on committed resource-time"
    )
    parser.add_argument(
        "--step-offset", type=int, default=0, help="added to logged steps (continuing a run with --init)"
    )
    parser.add_argument("--no-initial-eval", action="store_true", help="skip the step-0 validation")
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="stop training after this wall time (0: off)"
    )
    parser.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="also save every validated model as ckpt_<steps>.zip (for selecting on one load afterwards)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/itp/runs/ppo"))
    args = parser.parse_args(argv)

    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from novacron.placement.rl import FastMaskedPolicy, host_scoring_policy
    from novacron.sim.envs.placement import HOST_FEATURES

    loads, val_loads, val_seeds = start_run(args)

    train_env = _env(
        "fit", loads[0], args.hosts, args.tasks, loads=loads, shaping=args.shaping, shaping_gamma=args.gamma
    )
    venv = DummyVecEnv([lambda: Monitor(train_env)])
    venv.seed(args.seed)
    val_envs = {load: _env("val", load, args.hosts, args.tasks) for load in val_loads}

    if args.policy == "host_scoring":
        policy = host_scoring_policy()
        policy_kwargs = {
            "max_hosts": train_env.max_hosts,
            "host_features": len(HOST_FEATURES),
            "hidden": args.hidden,
        }
    else:
        policy, policy_kwargs = "MlpPolicy", {"net_arch": {"pi": [256, 256], "vf": [256, 256]}}
    model = MaskablePPO(
        policy,
        venv,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        gamma=args.gamma,
        gae_lambda=args.gae_lambda,
        learning_rate=args.lr,
        ent_coef=args.ent_coef,
        target_kl=args.target_kl,
        clip_range=args.clip_range,
        policy_kwargs=policy_kwargs,
        seed=args.seed,
        device="cpu",
        verbose=0,
    )

    if args.init is not None:
        model.set_parameters(str(args.init), exact_match=True, device="cpu")
        print(f"initialised from {args.init}", flush=True)
    if args.bc_teacher:
        t_bc = time.perf_counter()
        data = collect_teacher(train_env, args.bc_teacher, args.bc_episodes, args.gamma, args.seed)
        if args.bc_epochs > 0:
            losses = behaviour_clone(model, data, args.bc_epochs, args.batch_size, args.seed, args.bc_lr)
            print(
                f"imitated {args.bc_teacher}: {len(data['actions'])} decisions, loss {losses[0]:.3f} -> "
                f"{losses[-1]:.3f} in {time.perf_counter() - t_bc:.0f} s",
                flush=True,
            )
            model.save(str(args.out / "imitation.zip"))
        if args.bc_weight > 0:
            schedule = None
            if args.bc_weight_final is not None:
                anneal = max(args.bc_anneal_steps or args.timesteps, 1)
                w0, w1 = args.bc_weight, args.bc_weight_final

                def schedule() -> float:
                    return w0 + (w1 - w0) * min(model.num_timesteps / anneal, 1.0)

            add_bc_penalty(model, data, args.bc_weight, args.batch_size, args.seed, schedule)
            print(
                f"PPO + {args.bc_weight} x cross-entropy to {args.bc_teacher} ({len(data['actions'])} states)"
                + ("" if schedule is None else f", annealed to {args.bc_weight_final} over {anneal} steps")
            )
    elif args.bc_weight > 0:
        parser.error("--bc-weight needs --bc-teacher")

    if args.critic_warmup > 0:
        t_cw = time.perf_counter()
        warm = critic_warmup(
            model, train_env, args.critic_warmup, args.gamma, args.critic_epochs, args.batch_size, args.seed
        )
        (args.out / "critic_warmup.json").write_text(json.dumps(warm, indent=1))
        print(f"critic warm-up: {warm} in {time.perf_counter() - t_cw:.0f} s", flush=True)

    curve_path = args.out / "learning_curve.csv"
    fh = curve_path.open("w", newline="")
    writer = csv.writer(fh)
    writer.writerow(["timesteps", "seconds", "split", "load", "policy", "score", "acceptance_rate"])
    for load, (score, acc) in heuristic_reference("nearest_fit", val_envs, val_seeds).items():
        writer.writerow([0, 0.0, "val", load, "nearest_fit", score, acc])
    t0 = time.perf_counter()
    best = {"score": -np.inf, "timesteps": 0}

    class Checkpoints(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = args.eval_every if args.no_initial_eval else 0

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", ()):
                if "metrics" in info:
                    m = info["metrics"]
                    writer.writerow(
                        [
                            self.num_timesteps + args.step_offset,
                            f"{time.perf_counter() - t0:.1f}",
                            "fit",
                            info.get("load", ""),
                            "ppo",
                            m["score"],
                            m["acceptance_rate"],
                        ]
                    )
            if self.num_timesteps >= self.next_eval:
                self.next_eval += args.eval_every
                result = validate(FastMaskedPolicy(self.model), val_envs, val_seeds)
                seconds = time.perf_counter() - t0
                for load, (score, acc) in result.items():
                    step = self.num_timesteps + args.step_offset
                    writer.writerow([step, f"{seconds:.1f}", "val", load, "ppo", score, acc])
                fh.flush()
                if args.keep_checkpoints:
                    self.model.save(str(args.out / f"ckpt_{self.num_timesteps + args.step_offset}.zip"))
                mean = float(np.mean([s for s, _ in result.values()]))
                if mean > best["score"]:
                    best.update(score=mean, timesteps=self.num_timesteps + args.step_offset)
                    self.model.save(str(args.out / "best.zip"))
                print(
                    f"{self.num_timesteps + args.step_offset:>9d} steps {seconds:7.0f} s  val "
                    + " ".join(f"{load:g}:{s:.3f}" for load, (s, _) in result.items())
                    + f"  mean {mean:.4f} (best {best['score']:.4f} @ {best['timesteps']})",
                    flush=True,
                )
            return not (args.max_seconds and time.perf_counter() - t0 > args.max_seconds)

    model.learn(total_timesteps=args.timesteps, callback=Checkpoints())
    model.save(str(args.out / "last.zip"))
    result = validate(FastMaskedPolicy(model), val_envs, val_seeds)
    seconds = time.perf_counter() - t0
    for load, (score, acc) in result.items():
        step = model.num_timesteps + args.step_offset
        writer.writerow([step, f"{seconds:.1f}", "val", load, "ppo", score, acc])
    mean = float(np.mean([s for s, _ in result.values()]))
    if mean > best["score"]:
        best.update(score=mean, timesteps=model.num_timesteps + args.step_offset)
        model.save(str(args.out / "best.zip"))
    fh.close()
    summary = {"best_val_score": best["score"], "best_timesteps": best["timesteps"], "seconds": seconds}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(summary)
    return summary


if __name__ == "__main__":
    main()
