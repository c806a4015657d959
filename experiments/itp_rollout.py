"""Experiment: rollout planning over a heuristic, and its distillation into the fast host-scoring network.

Four steps, each writing under ``--out`` (default ``results/itp/``); only the last touches
the test split:

``tune-base``
    Grid over the admission threshold and the patience of
    :class:`novacron.placement.heuristics.PatientNearestFitPolicy` on the ``val`` split
    (``patient_sweep.csv``); the best mean over loads is the heuristic's default.
``tune``
    :class:`novacron.placement.rollout.RolloutPolicy` configurations (``--configs``, a list of
    ``key=value,...`` groups separated by ``;``) against their base on ``val`` episodes
    (``rollout_val.csv``, with decision latency).
``distill``
    DAgger (Ross et al., AISTATS 2011) on the ``fit`` split: iteration 0 rolls in with the
    planner, later iterations with the current network; the planner labels every visited
    state; the network (MaskablePPO host-scoring policy, initialised from ``--init``) is fitted
    to all labels so far by masked cross-entropy, and the iterate with the best mean ``val``
    score is kept as ``<run>/best.zip`` (``<run>/distill_log.csv``).
``evaluate``
    The planner on ``test`` episodes per load (``rollout_episodes.csv``, rows in
    ``experiments/itp_compare.py``'s per-episode format, so ``itp_compare.py --from-episodes``
    merges them into the tables and ``targets.md``). Decision latency is timed with
    ``time.perf_counter``.

    nice -n 19 .venv/bin/python experiments/itp_rollout.py tune-base
    nice -n 19 .venv/bin/python experiments/itp_rollout.py tune --configs "top_k=1,horizon=64,samples=3"
    nice -n 19 .venv/bin/python experiments/itp_rollout.py distill --run results/itp/runs/rollout_distill_s0
    nice -n 19 .venv/bin/python experiments/itp_rollout.py evaluate --loads 0.5,0.8,0.9,1.0 --seeds 10

Everything runs in one process with one torch thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from novacron.placement.heuristics import DEFER, PatientNearestFitPolicy, make_policy, run_episode
from novacron.placement.metrics import mean_ci95
from novacron.placement.rollout import DEFAULT_SETTINGS, RolloutPolicy, parse_settings
from novacron.placement.scenario import Scenario

#: the planner configuration chosen on val (``tune``); ``--planner`` overrides it
DEFAULT_PLANNER = DEFAULT_SETTINGS


def make_planner(config: str, base: str, seed: int = 0) -> RolloutPolicy:
    return RolloutPolicy(base=make_policy(base), seed=seed, **parse_settings(config))


def _scenario(args, load: float, split: str) -> Scenario:
    return Scenario(n_hosts=args.hosts, n_tasks=args.tasks, load=load, split=split)


def tune_base(args) -> pd.DataFrame:
    rows = []
    for load in args.loads:
        scenario = _scenario(args, load, "val")
        cluster = scenario.cluster()
        for threshold, patience in itertools.product(args.thresholds, args.patiences):
            policy = PatientNearestFitPolicy(threshold, patience)
            for seed in range(args.seeds):
                m = run_episode(scenario.episode(seed, cluster), policy, seed=seed)
                rows.append(
                    {"threshold": threshold, "patience": patience, "load": load, "seed": seed, **m.as_dict()}
                )
    df = pd.DataFrame(rows)
    table = df.pivot_table(index=["threshold", "patience"], columns="load", values="score", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    print(table.round(4).to_string())
    df.to_csv(args.out / "patient_sweep.csv", index=False)
    return table


def tune(args) -> pd.DataFrame:
    rows = []
    for load in args.loads:
        scenario = _scenario(args, load, "val")
        cluster = scenario.cluster()
        for seed in range(args.seeds):
            base = run_episode(scenario.episode(seed, cluster), make_policy(args.base), seed=seed)
            rows.append({"config": "base", "load": load, "seed": seed, **base.as_dict()})
            for config in args.configs:
                planner = make_planner(config, args.base, seed)
                m = run_episode(scenario.episode(seed, cluster), planner, seed=seed, clock=time.perf_counter)
                rows.append(
                    {
                        "config": config,
                        "load": load,
                        "seed": seed,
                        "overridden": planner.overridden,
                        **m.as_dict(),
                    }
                )
                print(
                    f"{config} load {load:g} seed {seed}: {m.score:.4f} (base {base.score:.4f}) "
                    f"{m.decision_latency_us / 1000:.1f} ms/decision",
                    flush=True,
                )
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "rollout_val.csv", index=False)
    print(df.pivot_table(index="config", columns="load", values="score", aggfunc="mean").round(4).to_string())
    return df


def evaluate(args) -> pd.DataFrame:
    """The planner, its base and ``nearest_fit`` on the test episodes of ``itp_compare.py``.

    Episodes are ``PlacementEnv.reset(seed=s)``'s, as in ``itp_compare.py`` (not
    ``Scenario.episode(s)``, another episode), so the rows pair with its tables; the two
    heuristics' rows let ``itp_compare.py --from-episodes`` check that they do.
    """
    from novacron.sim.envs.placement import PlacementEnv

    rows = []
    name = f"rollout:{args.base}"
    for load in args.loads:
        env = PlacementEnv(scenario=_scenario(args, load, "test"))
        for seed in range(args.seeds):
            for heuristic in dict.fromkeys(("nearest_fit", args.base)):
                env.reset(seed=seed)
                m = run_episode(env.sim, make_policy(heuristic), seed=seed, clock=time.perf_counter)
                rows.append({"policy": heuristic, "load": load, "seed": seed, **m.as_dict()})
            planner = make_planner(args.planner, args.base, seed)
            t0 = time.perf_counter()
            env.reset(seed=seed)
            m = run_episode(env.sim, planner, seed=seed, clock=time.perf_counter)
            rows.append({"policy": name, "load": load, "seed": seed, **m.as_dict()})
            print(
                f"test load {load:g} seed {seed}: score {m.score:.4f} (base {rows[-2]['score']:.4f}), "
                f"{m.decision_latency_us / 1000:.1f} ms/decision, {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "rollout_episodes.csv", index=False)
    for load, group in df[df["policy"] == name].groupby("load"):
        mean, half = mean_ci95(group["score"])
        print(f"load {load:g}: {mean:.4f} ± {half:.4f}")
    return df


# ---------------------------------------------------------------------------- distillation


def _train_module():
    """``experiments/itp_train.py`` as a module (its imitation and validation helpers)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import itp_train

    return itp_train


def collect(env, planner: RolloutPolicy, student, episodes: list[tuple[int, float]], gamma: float) -> dict:
    """Planner labels on the states visited by ``student`` (or by the planner when ``student`` is None)."""
    obs_l, mask_l, act_l, ret_l = [], [], [], []
    for seed, load in episodes:
        obs, _ = env.reset(seed=seed, options={"load": load})
        planner.reset(env.sim, seed)
        rewards, done = [], False
        while not done:
            choice = planner.select(env.sim)
            label = env.defer_action if choice == DEFER else int(choice)
            mask = env.action_masks()
            obs_l.append(obs)
            mask_l.append(mask)
            act_l.append(label)
            action = label if student is None else int(student.predict(obs, action_masks=mask)[0])
            obs, reward, done, _, _ = env.step(action)
            rewards.append(reward)
        ret_l.append(_train_module().discounted_returns(rewards, gamma))
    return _train_module().imitation_dataset(obs_l, mask_l, act_l, ret_l)


def distill(args) -> dict:
    import torch
    from sb3_contrib import MaskablePPO

    from novacron.placement.rl import FastMaskedPolicy

    torch.set_num_threads(1)
    train = _train_module()
    run = args.run
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({k: str(v) for k, v in vars(args).items()}, indent=1))
    env = train._env("fit", args.loads[0], args.hosts, args.tasks)
    val_envs = {load: train._env("val", load, args.hosts, args.tasks) for load in args.val_loads}
    val_seeds = range(args.val_seeds)
    model = MaskablePPO.load(str(args.init), device="cpu")
    model.set_random_seed(args.seed)
    planner = make_planner(args.planner, args.base, args.seed)
    log = (run / "distill_log.csv").open("w", newline="")
    writer = csv.writer(log)
    writer.writerow(["iteration", "decisions", "seconds", "load", "val_score"])
    t0 = time.perf_counter()

    def checkpoint(iteration: int, decisions: int) -> float:
        result = train.validate(FastMaskedPolicy(model), val_envs, val_seeds)
        for load, (score, _) in result.items():
            writer.writerow([iteration, decisions, f"{time.perf_counter() - t0:.0f}", load, score])
        log.flush()
        mean = float(np.mean([s for s, _ in result.values()]))
        print(
            f"iteration {iteration}: {decisions} labels, val "
            + " ".join(f"{load:g}:{s:.4f}" for load, (s, _) in result.items())
            + f" mean {mean:.4f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        return mean

    best = {"score": checkpoint(-1, 0), "iteration": -1}
    model.save(str(run / "best.zip"))
    data: dict | None = None
    for iteration in range(args.iterations):
        episodes = [
            (args.seed * 100_000 + iteration * 1_000 + e, args.loads[e % len(args.loads)])
            for e in range(args.episodes)
        ]
        student = None if iteration == 0 else FastMaskedPolicy(model)
        new = collect(env, planner, student, episodes, args.gamma)
        data = new if data is None else {k: np.concatenate([data[k], new[k]]) for k in data}
        losses = train.behaviour_clone(
            model, data, args.epochs, args.batch_size, args.seed + iteration, args.lr
        )
        print(f"iteration {iteration}: loss {losses[0]:.4f} -> {losses[-1]:.4f}", flush=True)
        model.save(str(run / f"iter{iteration}.zip"))
        score = checkpoint(iteration, len(data["actions"]))
        if score > best["score"]:
            best.update(score=score, iteration=iteration)
            model.save(str(run / "best.zip"))
    log.close()
    summary = {
        "best_val_score": best["score"],
        "best_iteration": best["iteration"],
        "seconds": time.perf_counter() - t0,
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    print(summary)
    return summary


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("tune-base", "tune", "distill", "evaluate"))
    parser.add_argument("--loads", default=None, help="comma-separated loads (default per step)")
    parser.add_argument(
        "--seeds", type=int, default=10, help="episode seeds 0..N-1 (tune-base, tune, evaluate)"
    )
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--base", default="patient_nearest_fit", help="the heuristic the planner rolls out")
    parser.add_argument("--planner", default=DEFAULT_PLANNER, help="RolloutPolicy settings, key=value,...")
    parser.add_argument("--configs", default=DEFAULT_PLANNER, help="tune: planner settings separated by ';'")
    parser.add_argument("--thresholds", default="0.25,0.35,0.5")
    parser.add_argument("--patiences", default="0.5,0.75,0.9")
    parser.add_argument("--run", type=Path, default=Path("results/itp/runs/rollout_distill_s0"))
    parser.add_argument("--init", type=Path, default=Path("results/itp/runs/bc_s0/imitation.zip"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=3, help="distill: DAgger iterations")
    parser.add_argument("--episodes", type=int, default=8, help="distill: fit episodes per iteration")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--gamma", type=float, default=0.995)
    parser.add_argument("--val-loads", default="0.5,0.8,0.9,1.0")
    parser.add_argument("--val-seeds", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("results/itp"))
    args = parser.parse_args(argv)
    default_loads = {"tune-base": "0.5,0.8,0.9,1.0", "tune": "0.8", "distill": "0.5,0.7,0.8,0.9,1.0"}
    args.loads = [
        float(x) for x in (args.loads or default_loads.get(args.step, "0.5,0.8,0.9,1.0")).split(",")
    ]
    args.val_loads = [float(x) for x in args.val_loads.split(",")]
    args.thresholds = [float(x) for x in args.thresholds.split(",")]
    args.patiences = [float(x) for x in args.patiences.split(",")]
    args.configs = [c for c in (part.strip() for part in args.configs.split(";")) if c]
    args.out.mkdir(parents=True, exist_ok=True)
    step = {"tune-base": tune_base, "tune": tune, "distill": distill, "evaluate": evaluate}[args.step]
    return step(args)


if __name__ == "__main__":
    main()
