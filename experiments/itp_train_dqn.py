"""Experiment: train a masked DQN placement policy (DQfD-style warm start), selecting on the validation split.

Same conventions as ``experiments/itp_train.py``: training episodes come from the
``fit`` part of the pod list (first 55 %) at a load drawn per episode from
``--loads``; the greedy policy is scored on fixed ``val`` episodes (55-70 %,
seeds ``0..--val-seeds-1``) at each of ``--val-loads``, and the checkpoint with
the best mean validation score is kept as ``best.zip``. The test split is never
touched (it is for ``experiments/itp_compare.py --dqn-model``).

The agent is :class:`novacron.placement.rl.MaskedDQN` (masking in the action
choice, in exploration and in the target's max; double-DQN target) with the
dueling host-scoring Q-network (``arch="host_scoring"``). Training, after
Hester et al. (2018, "Deep Q-learning from Demonstrations"):

1. ``--init``: the advantage part of the Q-network starts from a trained
   host-scoring MaskablePPO actor (e.g. ``runs/bcpat_s0/best.zip``); the state
   value part starts from scratch;
2. ``--demo-teacher`` is rolled out on ``--demo-episodes`` fit episodes; its
   transitions are the demonstrations;
3. ``--pretrain-steps`` gradient steps on demonstrations only (TD + large-margin loss);
4. ``--timesteps`` online steps (epsilon-greedy among allowed actions), each
   batch mixing ``--demo-fraction`` demonstrations (margin loss on those rows).

Only checkpoints with at least one TD update are candidates for ``best.zip`` (so
the selected model is a trained DQN, not the copied actor); the warm start's own
validation score is logged as ``policy=init`` for reference. Writes
``best.zip`` (a ``torch.save`` file; the name follows the other runs),
``last.zip``, ``learning_curve.csv`` (same columns as ``itp_train.py``),
``config.json``, ``summary.json``.

    nice -n 19 .venv/bin/python experiments/itp_train_dqn.py --init results/itp/runs/bcpat_s0/best.zip \\
        --seed 0 --timesteps 600000 --max-seconds 1800 --out results/itp/runs/dqn_s0
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from itp_train import _env, heuristic_reference, start_run, validate  # noqa: E402


def collect_demos(env, teacher_name: str, episodes: int, seed: int, buffer) -> list[float]:
    """Add a heuristic's transitions on ``episodes`` fit episodes to ``buffer`` (flagged ``demo``)."""
    from novacron.placement.heuristics import DEFER, make_policy

    scores = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed * 100_000 + episode)
        teacher = make_policy(teacher_name)
        teacher.reset(env.sim, episode)
        done, info = False, {}
        while not done:
            choice = teacher.select(env.sim)
            action = env.defer_action if choice == DEFER else int(choice)
            mask = env.action_masks()
            next_obs, reward, done, _, info = env.step(action)
            buffer.add(obs, action, reward, next_obs, env.action_masks(), done, mask=mask, demo=True)
            obs = next_obs
        scores.append(info["metrics"]["score"])
    return scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loads", default="0.5,0.7,0.8,0.9,1.0")
    parser.add_argument("--val-loads", default="0.5,0.8,0.9,1.0")
    parser.add_argument("--val-seeds", type=int, default=4)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--init", type=Path, help="host-scoring MaskablePPO .zip whose actor starts A(s, a)")
    parser.add_argument("--demo-teacher", default="patient_nearest_fit")
    parser.add_argument("--demo-episodes", type=int, default=20)
    parser.add_argument("--pretrain-steps", type=int, default=20_000)
    parser.add_argument("--timesteps", type=int, default=600_000, help="online environment steps")
    parser.add_argument("--eval-every", type=int, default=100_000, help="online steps between validations")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--buffer-size", type=int, default=200_000)
    parser.add_argument("--train-freq", type=int, default=4)
    parser.add_argument("--target-update", type=int, default=2_000)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--margin-weight", type=float, default=1.0)
    parser.add_argument("--demo-fraction", type=float, default=0.25)
    parser.add_argument("--eps-start", type=float, default=0.05)
    parser.add_argument("--eps-end", type=float, default=0.01)
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="stop online training after this (0: off)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/itp/runs/dqn_s0"))
    args = parser.parse_args(argv)

    from novacron.placement.rl import DQNConfig, FastMaskedPolicy, MaskedDQN, MaskedReplayBuffer
    from novacron.sim.envs.placement import HOST_FEATURES

    loads, val_loads, val_seeds = start_run(args)

    env = _env("fit", loads[0], args.hosts, args.tasks, loads=loads)
    val_envs = {load: _env("val", load, args.hosts, args.tasks) for load in val_loads}
    n_obs, n_actions = env.observation_space.shape[0], env.action_space.n
    config = DQNConfig(
        hidden=(args.hidden,),
        arch="host_scoring",
        max_hosts=env.max_hosts,
        host_features=len(HOST_FEATURES),
        learning_rate=args.lr,
        gamma=args.gamma,
        buffer_size=args.buffer_size,
        batch_size=args.batch_size,
        learning_starts=args.batch_size,
        train_freq=args.train_freq,
        target_update_interval=args.target_update,
        exploration_fraction=0.5,
        exploration_initial_eps=args.eps_start,
        exploration_final_eps=args.eps_end,
        margin=args.margin,
        margin_weight=args.margin_weight,
        demo_fraction=args.demo_fraction,
        seed=args.seed,
    )
    model = MaskedDQN(n_obs, n_actions, config)
    if args.init is not None:
        from sb3_contrib import MaskablePPO

        actor = MaskablePPO.load(str(args.init), device="cpu").policy.features_extractor.inner
        model.q_net.load_scorer(actor)
        model.q_target.load_state_dict(model.q_net.state_dict())
        print(f"advantages initialised from {args.init}", flush=True)

    fh = (args.out / "learning_curve.csv").open("w", newline="")
    writer = csv.writer(fh)
    writer.writerow(["timesteps", "seconds", "split", "load", "policy", "score", "acceptance_rate"])
    for load, (score, acc) in heuristic_reference("nearest_fit", val_envs, val_seeds).items():
        writer.writerow([0, 0.0, "val", load, "nearest_fit", score, acc])
    t0 = time.perf_counter()
    best = {"score": -np.inf, "timesteps": None, "phase": None}

    def checkpoint(step: int, phase: str, candidate: bool = True) -> float:
        result = validate(FastMaskedPolicy(model), val_envs, val_seeds)
        seconds = time.perf_counter() - t0
        name = "dqn" if candidate else "init"
        for load, (score, acc) in result.items():
            writer.writerow([step, f"{seconds:.1f}", "val", load, name, score, acc])
        fh.flush()
        mean = float(np.mean([s for s, _ in result.values()]))
        if candidate and mean > best["score"]:
            best.update(score=mean, timesteps=step, phase=phase)
            model.save(args.out / "best.zip")
        print(
            f"{phase:9s} {step:>8d} steps {seconds:6.0f} s  val "
            + " ".join(f"{load:g}:{s:.3f}" for load, (s, _) in result.items())
            + f"  mean {mean:.4f} (best {best['score']:.4f} @ {best['phase']} {best['timesteps']})",
            flush=True,
        )
        return mean

    checkpoint(0, "init", candidate=False)
    demos = MaskedReplayBuffer(400_000, n_obs, n_actions)  # zero pages: only what is used
    teacher_scores = collect_demos(env, args.demo_teacher, args.demo_episodes, args.seed, demos)
    print(
        f"demonstrations: {demos.size} transitions of {args.demo_teacher} "
        f"(fit score {np.mean(teacher_scores):.3f}) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    if args.pretrain_steps > 0:
        model.pretrain(demos, args.pretrain_steps)
        checkpoint(0, "pretrain")

    def on_step(m: MaskedDQN, step: int):
        if step % args.eval_every == 0:
            checkpoint(step, "online")
        if args.max_seconds and time.perf_counter() - t0 > args.max_seconds:
            return False
        return None

    def on_episode(m: MaskedDQN, ep_return: float, info: dict) -> None:
        m_ = info.get("metrics", {})
        seconds = f"{time.perf_counter() - t0:.1f}"
        writer.writerow(
            [
                m.num_timesteps,
                seconds,
                "fit",
                info.get("load", ""),
                "dqn",
                m_.get("score"),
                m_.get("acceptance_rate"),
            ]
        )

    model.learn(
        env,
        args.timesteps,
        seed=args.seed * 100_000 + 50_000,
        demos=demos,
        callback=on_step,
        on_episode=on_episode,
    )
    model.save(args.out / "last.zip")
    if model.num_timesteps % args.eval_every:
        checkpoint(model.num_timesteps, "last")
    fh.close()
    summary = {
        "best_val_score": best["score"],
        "best_timesteps": best["timesteps"],
        "best_phase": best["phase"],
        "online_timesteps": model.num_timesteps,
        "demo_transitions": demos.size,
        "seconds": time.perf_counter() - t0,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(summary)
    return summary


if __name__ == "__main__":
    main()
