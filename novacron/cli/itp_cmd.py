"""``novacron itp``: intelligent task placement (ITP) on the Alibaba openb trace.

* ``novacron itp evaluate --policy best_fit --load 0.9 --seed 0 --episodes 5 --json``
  runs a heuristic (any of :data:`novacron.placement.heuristics.HEURISTICS`: ``nearest_fit``,
  ``fgd``, ``stream_nearest_fit``, ...), the rollout planner (``--policy rollout``, look-ahead over
  ``--base`` with ``--planner key=value,...`` settings, see
  :mod:`novacron.placement.rollout`) or a trained model
  (``--policy maskable_ppo|masked_dqn|td3 --model PATH``) on episodes ``seed .. seed+episodes-1``
  of ``novacron/Placement-v0`` and prints one JSON object: acceptance rate,
  the primary score, mean wait and slowdown, fragmentation, p95 RTT to origin
  and decision latency per placement (each a mean over episodes, with a 95 %
  confidence interval); ``--bound`` adds ``score_bound``, the LP upper bound on each
  episode's score (:mod:`novacron.placement.bound`); ``--paired-with nearest_fit,nearest_fgd`` adds
  ``score_over_<heuristic>``, each episode's score over that heuristic's on the same episode (the
  form ITP targets take), mean and CI over episodes. Models decide through the fast masked-inference path
  (:class:`novacron.placement.rl.FastMaskedPolicy`, same actions as SB3's
  deterministic ``predict``); ``--sb3-predict`` times SB3's ``predict`` instead.
* ``novacron itp train --algo maskable_ppo --timesteps N --out model.zip`` trains
  on the first 70 % of the pod list (evaluation uses the last 30 % by default),
  printing SB3's progress and writing its CSV log next to the model; ``--arch
  host_scoring`` uses the permutation-equivariant per-host scorer of
  :func:`novacron.placement.rl.host_scoring_policy` instead of SB3's flat MLP. (The
  full recipe, imitation warm start and validation-based selection, is
  ``experiments/itp_train.py``.)
  ``--algo masked_dqn`` trains the masked DQN we report, with the recipe of
  :mod:`novacron.placement.dqfd` (shared with ``experiments/itp_train_dqn.py``): the
  dueling host-scoring Q-network, optionally warm-started from a host-scoring
  MaskablePPO (``--init PATH``), pre-trained on ``--demo-episodes`` episodes of
  ``--demo-teacher`` (``--pretrain-steps`` steps of TD + large-margin loss), then
  ``--timesteps`` online steps with demonstrations in every batch (optionally over
  several ``--train-loads``, one drawn per episode; ``--max-seconds`` caps the online
  phase). It saves the model after pre-training, every ``--checkpoint-episodes``
  online episodes and at the end, and writes a CSV of episode returns. (Selection on
  the validation split is ``experiments/itp_train_dqn.py``.)
  ``--algo td3`` trains TD3 over the continuous relaxation of
  :mod:`novacron.placement.relaxation` (the action weights a host-scoring rule, plus a
  defer gate; environment ``novacron/PlacementContinuous-v0``), with the recipe of
  :func:`~novacron.placement.relaxation.train_td3`: the actor regressed onto
  ``--demo-teacher``'s decisions on ``--demo-episodes`` episodes, ``--pretrain-steps``
  critic-only steps on them, then ``--timesteps`` online TD3+BC steps (``--init PATH``
  continues from a TD3 .zip instead; ``--gamma``, ``--train-loads``, ``--max-seconds`` as
  for masked_dqn). It saves after the warm start and at the end. ``--policy td3 --model
  PATH`` evaluates it. (Selection on the validation split is ``experiments/itp_train_td3.py``.)

Decision latency is timed here with ``time.perf_counter`` (protocol code under
``novacron/`` may not read the OS clock). Exit status 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

MODEL_POLICIES = ("maskable_ppo", "masked_dqn", "td3")
METRICS = (
    "acceptance_rate",
    "score",
    "mean_wait_s",
    "mean_slowdown",
    "fragmentation",
    "p95_rtt_ms",
    "decision_latency_us",
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "itp",
        help="task placement on a heterogeneous multi-region cluster (heuristics and RL)",
        description="Evaluate or train task-placement policies on the Alibaba openb trace "
        "(hosts spread over Azure regions) in the novacron/Placement-v0 environment.",
    )
    sub = parser.add_subparsers(dest="itp_command", required=True, metavar="ACTION")

    ev = sub.add_parser("evaluate", help="run a policy and print its metrics")
    _scenario_args(ev, default_split="test")
    ev.add_argument(
        "--policy",
        required=True,
        help="a heuristic name, 'maskable_ppo', 'masked_dqn' or 'td3' (needs --model)",
    )
    ev.add_argument("--model", type=Path, metavar="PATH", help="a trained model (.zip, or .pt for DQN)")
    ev.add_argument(
        "--sb3-predict", action="store_true", help="decide with SB3's model.predict (PPO; slower path)"
    )
    ev.add_argument(
        "--base", default="patient_nearest_fit", help="rollout: the heuristic the planner looks ahead with"
    )
    ev.add_argument("--planner", help="rollout: settings key=value,... (default: the val-tuned ones)")
    ev.add_argument("--seed", type=int, default=0, help="first episode seed (default 0)")
    ev.add_argument("--episodes", type=int, default=5, help="episodes, seeds seed..seed+N-1 (default 5)")
    ev.add_argument(
        "--bound",
        action="store_true",
        help="also the LP upper bound on each episode's score (score_bound; 1-3 s per 512-task episode)",
    )
    ev.add_argument(
        "--paired-with",
        default="",
        metavar="HEURISTIC,...",
        help="also each episode's score over these heuristics' on the same episode (score_over_<name>)",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object (default: a table)")
    ev.set_defaults(func=run_evaluate)

    tr = sub.add_parser("train", help="train an RL placement policy")
    _scenario_args(tr, default_split="train")
    tr.add_argument("--algo", choices=MODEL_POLICIES, default="maskable_ppo")
    tr.add_argument(
        "--arch",
        choices=("mlp", "host_scoring"),
        default="mlp",
        help="maskable_ppo network: SB3's flat MLP, or per-host scores from one shared MLP "
        "(permutation-equivariant; what experiments/itp_train.py uses). masked_dqn always uses "
        "the dueling host-scoring Q-network",
    )
    tr.add_argument("--timesteps", type=int, default=50_000, help="environment steps (default 50000)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--n-envs", type=int, default=1, help="parallel environments (SubprocVecEnv if > 1)")
    tr.add_argument("--out", type=Path, default=Path("results/itp/maskable_ppo.zip"), metavar="PATH")
    tr.add_argument("--quiet", action="store_true", help="no progress output")
    tr.add_argument(
        "--train-loads",
        metavar="LIST",
        help="masked_dqn, td3: comma-separated loads, one drawn per episode (default: --load)",
    )
    tr.add_argument(
        "--checkpoint-episodes", type=int, default=20, help="masked_dqn: save every N episodes (20)"
    )
    tr.add_argument(
        "--checkpoint-steps", type=int, default=0, help="maskable_ppo: also save every N steps (0: off)"
    )
    _dqfd_args(tr)
    tr.set_defaults(func=run_train)
    return parser


def _dqfd_args(parser: argparse.ArgumentParser) -> None:
    """The masked-DQN recipe's options (defaults: :class:`novacron.placement.dqfd.DQfDSettings`)."""
    from novacron.placement.dqfd import DQfDSettings

    d = DQfDSettings()
    parser.add_argument(
        "--init",
        type=Path,
        metavar="PATH",
        help="masked_dqn: host-scoring MaskablePPO .zip to start the advantages A(s, a) from; "
        "td3: a TD3 .zip to continue from (skips the actor regression)",
    )
    parser.add_argument(
        "--demo-teacher",
        default=d.demo_teacher,
        help=f"masked_dqn, td3: demonstrator heuristic ({d.demo_teacher})",
    )
    parser.add_argument(
        "--demo-episodes",
        type=int,
        default=d.demo_episodes,
        help=f"masked_dqn, td3: ({d.demo_episodes})",
    )
    parser.add_argument(
        "--pretrain-steps",
        type=int,
        default=d.pretrain_steps,
        help=f"masked_dqn: gradient steps on demonstrations only; td3: critic-only steps on them "
        f"({d.pretrain_steps})",
    )
    parser.add_argument("--gamma", type=float, default=d.gamma, help=f"masked_dqn, td3: discount ({d.gamma})")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=0,
        help="masked_dqn, td3: wall time (s, from the start) after which the online phase ends (0: off)",
    )


def _scenario_args(parser: argparse.ArgumentParser, *, default_split: str) -> None:
    parser.add_argument("--nodes", type=Path, metavar="CSV", help="node list (default: openb, all nodes)")
    parser.add_argument("--pods", type=Path, metavar="CSV", help="pod list (default: openb default)")
    parser.add_argument("--load", type=float, default=0.8, help="offered load on the bottleneck (0.8)")
    parser.add_argument("--hosts", type=int, default=16, help="hosts sampled from the node list (16)")
    parser.add_argument("--max-hosts", type=int, help="observation slots (default: --hosts)")
    parser.add_argument("--tasks", type=int, default=512, help="tasks per episode (512)")
    parser.add_argument("--cluster-seed", type=int, default=0, help="seed of the host sample (0)")
    parser.add_argument(
        "--split",
        choices=("train", "test", "all"),
        default=default_split,
        help=f"part of the pod list: first 70%%, last 30%% or all (default {default_split})",
    )


def make_env(args: argparse.Namespace, loads: list[float] | None = None):
    """The environment ``args`` describe; with ``loads``, each episode draws its load from them."""
    from novacron.placement.cluster import DEFAULT_NODES, DEFAULT_PODS
    from novacron.placement.scenario import Scenario
    from novacron.sim.envs.placement import PlacementEnv

    scenario = Scenario(
        nodes=args.nodes or DEFAULT_NODES,
        pods=args.pods or DEFAULT_PODS,
        n_hosts=args.hosts,
        n_tasks=args.tasks,
        load=args.load,
        cluster_seed=args.cluster_seed,
        split=args.split,
    )
    return PlacementEnv(scenario=scenario, max_hosts=args.max_hosts, loads=loads)


def evaluate(args: argparse.Namespace) -> dict:
    """Mean and 95 % CI of each metric over the episodes (see the module doc)."""
    import numpy as np

    from novacron.placement.heuristics import HEURISTICS, make_policy, run_episode
    from novacron.placement.metrics import mean_ci95, summarise

    env = make_env(args)
    model = None
    if args.policy in MODEL_POLICIES:
        if args.model is None:
            raise ValueError(f"--policy {args.policy} needs --model PATH")
        _single_thread_torch()
        model = load_predictor(args.policy, args.model, getattr(args, "sb3_predict", False))
    elif args.policy == "rollout":
        from novacron.placement.rollout import DEFAULT_SETTINGS, RolloutPolicy, parse_settings

        settings = parse_settings(getattr(args, "planner", None) or DEFAULT_SETTINGS)
        base = getattr(args, "base", "patient_nearest_fit")
        make_policy(base)  # an unknown base is a ValueError now, not after the first episode
    elif args.policy not in HEURISTICS:
        raise ValueError(
            f"unknown policy {args.policy!r}; choose from "
            f"{', '.join([*HEURISTICS, 'rollout', *MODEL_POLICIES])}"
        )
    paired = [name for name in getattr(args, "paired_with", "").split(",") if name]
    unknown = [name for name in paired if name not in HEURISTICS]
    if unknown:
        known = ", ".join(HEURISTICS)
        raise ValueError(f"--paired-with: unknown heuristic(s) {', '.join(unknown)}; choose from {known}")
    seeds = list(range(args.seed, args.seed + args.episodes))
    rows = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        if args.policy == "rollout":
            planner = RolloutPolicy(base=make_policy(base), seed=seed, **settings)
            metrics = run_episode(env.sim, planner, seed=seed, clock=time.perf_counter)
        elif model is None:
            metrics = run_episode(env.sim, make_policy(args.policy), seed=seed, clock=time.perf_counter)
        else:
            spent, done = 0.0, False
            while not done:
                t0 = time.perf_counter()
                action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
                spent += time.perf_counter() - t0
                obs, _, done, _, _ = env.step(int(action))
            metrics = summarise(env.sim, spent)
        row = metrics.as_dict()
        if getattr(args, "bound", False):
            from novacron.placement.bound import score_upper_bound

            row["score_bound"] = score_upper_bound(env.sim).score  # reads the task list, not the run
        for name in paired:  # the same episode again, from the same seed
            env.reset(seed=seed)
            baseline = run_episode(env.sim, make_policy(name), seed=seed).score
            row[f"score_over_{name}"] = row["score"] / baseline if baseline > 0 else float("nan")
        rows.append(row)
    result: dict = {
        "policy": args.policy,
        "load": args.load,
        "hosts": args.hosts,
        "tasks": args.tasks,
        "split": args.split,
        "seeds": seeds,
    }
    extra = [name for name in rows[0] if name == "score_bound" or name.startswith("score_over_")]
    for name in (*METRICS, *extra):
        values = np.array([r[name] for r in rows], dtype=float)
        mean, half = mean_ci95(values)
        result[name] = mean
        result[f"{name}_ci95"] = half
    result["decisions"] = int(sum(r["decisions"] for r in rows))
    result["defers"] = int(sum(r["defers"] for r in rows))
    return result


def load_predictor(policy: str, path: Path, sb3_predict: bool = False):
    """The trained ``policy`` in ``path`` as a ``predict(obs, action_masks=...)`` object.

    MaskablePPO and masked DQN decide through :class:`~novacron.placement.rl.FastMaskedPolicy`
    (``sb3_predict``: SB3's own ``predict`` for PPO); TD3 through its scoring rule,
    :class:`~novacron.placement.relaxation.RelaxedPolicy`.
    """
    if policy == "td3":
        from novacron.placement.relaxation import load_policy

        return load_policy(path)
    from novacron.placement.rl import FastMaskedPolicy, load_model

    model = load_model(policy, path)
    return model if sb3_predict and policy == "maskable_ppo" else FastMaskedPolicy(model)


def _single_thread_torch() -> None:
    """One torch thread: small MLPs gain nothing from more, and on a busy 2-core machine
    two threads made every op ~1000x slower (spin-waiting), training 40x slower."""
    import torch

    torch.set_num_threads(1)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        print("novacron itp: error: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        result = evaluate(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"novacron itp: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        extra = [name for name in result if name == "score_bound" or name.startswith("score_over_")]
        for name in (*METRICS, *(name for name in extra if not name.endswith("_ci95"))):
            print(f"{name:22s} {result[name]:12.4f} ± {result[name + '_ci95']:.4f}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    if args.timesteps < 1 or args.n_envs < 1:
        print("novacron itp: error: --timesteps and --n-envs must be >= 1", file=sys.stderr)
        return 2
    _single_thread_torch()
    if args.algo == "masked_dqn":
        return _train_masked_dqn(args)
    if args.algo == "td3":
        return _train_td3(args)
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    try:
        make_env(args)  # validate the settings in this process first
    except ValueError as exc:
        print(f"novacron itp: error: {exc}", file=sys.stderr)
        return 2
    factories = [lambda: Monitor(make_env(args)) for _ in range(args.n_envs)]
    venv = SubprocVecEnv(factories) if args.n_envs > 1 else DummyVecEnv(factories)
    venv.seed(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.out.with_suffix("")
    logger = configure(str(log_dir), ["csv"] if args.quiet else ["stdout", "csv"])
    n_steps = max(16, min(512, args.timesteps // args.n_envs))
    policy, policy_kwargs = "MlpPolicy", None
    if getattr(args, "arch", "mlp") == "host_scoring":
        from novacron.placement.rl import host_scoring_policy
        from novacron.sim.envs.placement import HOST_FEATURES

        policy = host_scoring_policy()
        max_hosts = args.max_hosts or args.hosts
        policy_kwargs = {"max_hosts": max_hosts, "host_features": len(HOST_FEATURES)}
    model = MaskablePPO(
        policy,
        policy_kwargs=policy_kwargs,
        env=venv,
        n_steps=n_steps,
        batch_size=min(64, n_steps * args.n_envs),
        gamma=0.99,
        seed=args.seed,
        device="cpu",
        verbose=0 if args.quiet else 1,
    )
    model.set_logger(logger)
    t0 = time.perf_counter()
    callback = _checkpoint_callback(args.out, args.checkpoint_steps)
    model.learn(total_timesteps=args.timesteps, callback=callback)
    venv.close()
    model.save(str(args.out))
    print(
        f"trained {args.algo} for {args.timesteps} steps in {time.perf_counter() - t0:.1f} s; "
        f"model {args.out}, log {log_dir / 'progress.csv'}"
    )
    return 0


def _checkpoint_callback(out: Path, every: int):
    """SB3 callback saving the model to ``out`` every ``every`` steps (None when ``every`` <= 0)."""
    if every <= 0:
        return None
    from stable_baselines3.common.callbacks import BaseCallback

    class SaveEvery(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_save = every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_save:
                self.model.save(str(out))
                self.next_save += every
            return True

    return SaveEvery()


def _dqfd_settings(args: argparse.Namespace):
    """The shared recipe's settings from the command line (the rest keep the reported defaults)."""
    from novacron.placement.dqfd import DQfDSettings

    return DQfDSettings(
        seed=args.seed,
        gamma=args.gamma,
        init=args.init,
        demo_teacher=args.demo_teacher,
        demo_episodes=args.demo_episodes,
        pretrain_steps=args.pretrain_steps,
        timesteps=args.timesteps,
    )


def _train_masked_dqn(args: argparse.Namespace) -> int:
    """Train with :func:`novacron.placement.dqfd.train_dqfd`; exit status 2 for bad settings."""
    from novacron.placement.heuristics import make_policy

    try:
        loads = [float(x) for x in args.train_loads.split(",")] if args.train_loads else None
        env = make_env(args, loads)
        make_policy(args.demo_teacher)  # an unknown teacher is an error now, not after set-up
        if args.pretrain_steps < 0 or args.demo_episodes < 0:
            raise ValueError("--pretrain-steps and --demo-episodes must be >= 0")
    except ValueError as exc:
        print(f"novacron itp: error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.out.with_suffix("")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "progress.csv"
    t0 = time.perf_counter()
    with log_path.open("w", newline="") as fh:
        try:
            run = _run_dqfd(args, env, fh, t0)
        except (ValueError, FileNotFoundError) as exc:  # e.g. --init is not a host-scoring PPO
            print(f"novacron itp: error: {exc}", file=sys.stderr)
            return 2
    run.model.save(args.out)
    print(
        f"trained {args.algo} ({run.demo_transitions} demonstration transitions, "
        f"{args.pretrain_steps} pre-training steps, {run.model.num_timesteps} online steps) "
        f"in {time.perf_counter() - t0:.1f} s; model {args.out}, log {log_path}"
    )
    return 0


def _run_dqfd(args: argparse.Namespace, env, fh, t0: float):
    """The shared recipe with this command's hooks: progress CSV, periodic saves, time limit."""
    import csv

    from novacron.placement.dqfd import train_dqfd
    from novacron.placement.rl import MaskedDQN

    writer = csv.writer(fh)
    writer.writerow(["episode", "timesteps", "load", "return", "score", "seconds"])

    def checkpoint(model: MaskedDQN, phase: str, step: int) -> None:
        if phase == "pretrain":  # a usable model before the (long) online phase
            model.save(args.out)

    def on_episode(model: MaskedDQN, ep_return: float, info: dict) -> None:
        episode = len(model.episode_returns)
        score = info.get("metrics", {}).get("score", float("nan"))
        seconds = time.perf_counter() - t0
        load = info.get("load", "")
        writer.writerow([episode, model.num_timesteps, load, ep_return, score, f"{seconds:.1f}"])
        fh.flush()
        if episode % max(1, args.checkpoint_episodes) == 0:
            model.save(args.out)
            if not args.quiet:
                print(f"episode {episode} steps {model.num_timesteps} score {score:.3f} ({seconds:.0f} s)")

    def out_of_time() -> bool:
        return bool(args.max_seconds) and time.perf_counter() - t0 > args.max_seconds

    say = None if args.quiet else (lambda message: print(message, flush=True))
    return train_dqfd(
        env,
        _dqfd_settings(args),
        checkpoint=checkpoint,
        on_episode=on_episode,
        should_stop=out_of_time,
        log=say,
    )


def _train_td3(args: argparse.Namespace) -> int:
    """Train with :func:`novacron.placement.relaxation.train_td3`; exit status 2 for bad settings."""
    from novacron.placement.heuristics import make_policy
    from novacron.placement.relaxation import TD3Settings, train_td3
    from novacron.sim.envs.placement_continuous import PlacementContinuousEnv

    try:
        loads = [float(x) for x in args.train_loads.split(",")] if args.train_loads else None
        env = PlacementContinuousEnv(make_env(args, loads))
        make_policy(args.demo_teacher)  # an unknown teacher is an error now, not after set-up
        if args.pretrain_steps < 0 or args.demo_episodes < 0:
            raise ValueError("--pretrain-steps and --demo-episodes must be >= 0")
        if args.init is not None and not args.init.is_file():
            raise ValueError(f"no model file {args.init}")
    except ValueError as exc:
        print(f"novacron itp: error: {exc}", file=sys.stderr)
        return 2
    settings = TD3Settings(
        seed=args.seed,
        gamma=args.gamma,
        demo_teacher=args.demo_teacher,
        demo_episodes=args.demo_episodes,
        critic_pretrain_steps=args.pretrain_steps,
        timesteps=args.timesteps,
        init=args.init,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = args.out.with_suffix("")
    t0 = time.perf_counter()
    from stable_baselines3.common.logger import configure

    def checkpoint(model, phase: str, step: int) -> None:
        model.save(str(args.out))
        if phase == "warm":  # SB3's progress log for the online phase
            model.set_logger(configure(str(log_dir), ["csv"] if args.quiet else ["stdout", "csv"]))

    def out_of_time() -> bool:
        return bool(args.max_seconds) and time.perf_counter() - t0 > args.max_seconds

    say = None if args.quiet else (lambda message: print(message, flush=True))
    run = train_td3(env, settings, checkpoint=checkpoint, should_stop=out_of_time, log=say)
    print(
        f"trained {args.algo} ({run.demo_transitions} demonstration transitions, "
        f"{args.pretrain_steps} critic pre-training steps, {run.model.num_timesteps} online steps) "
        f"in {time.perf_counter() - t0:.1f} s; model {args.out}, log {log_dir / 'progress.csv'}"
    )
    return 0
