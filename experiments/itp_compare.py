"""Experiment: placement heuristics (and trained RL policies) per load level, on unseen tasks.

Runs every heuristic (and, with ``--model PATH``, a MaskablePPO model trained by
``novacron itp train``; with ``--dqn-model PATH``, a masked DQN trained by
``novacron itp train --algo masked_dqn``) on episodes of ``novacron/Placement-v0`` drawn from the
*test* part of the pod list (the last 30 %, which training never sees), at each
load level, over ``--seeds`` episode seeds. Writes under ``--out``
(default ``results/itp/``):

* ``compare_episodes.csv``: one row per (policy, load, seed);
* ``compare.csv`` and ``compare.md``: mean and 95 % CI per (policy, load) of the
  primary score, acceptance rate, mean wait, slowdown, fragmentation, p95 RTT to
  origin and decision latency per placement (timed with ``time.perf_counter``;
  models decide through :class:`novacron.placement.rl.FastMaskedPolicy` unless
  ``--sb3-predict`` asks for SB3's ``model.predict``);
* ``compare.png``: score and acceptance per policy and load, with CI bars.

    .venv/bin/python experiments/itp_compare.py [--loads 0.5,0.9] [--seeds 10] [--model PATH]
        [--dqn-model PATH] [--sb3-predict]

Data: Alibaba cluster-trace-gpu-v2023 (openb; Weng et al., ATC 2023) and Azure
inter-region RTTs (CC BY 4.0); see novacron/data/README.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from novacron.placement.heuristics import HEURISTICS, make_policy, run_episode  # noqa: E402
from novacron.placement.metrics import mean_ci95, summarise  # noqa: E402
from novacron.placement.scenario import Scenario  # noqa: E402
from novacron.sim.envs.placement import PlacementEnv  # noqa: E402

METRICS = (
    "score",
    "acceptance_rate",
    "mean_wait_s",
    "mean_slowdown",
    "fragmentation",
    "p95_rtt_ms",
    "decision_latency_us",
)


def run_model(env: PlacementEnv, model, seed: int) -> dict:
    obs, _ = env.reset(seed=seed)
    spent, done = 0.0, False
    while not done:
        t0 = time.perf_counter()
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        spent += time.perf_counter() - t0
        obs, _, done, _, _ = env.step(int(action))
    return summarise(env.sim, spent).as_dict()


def load_models(model_path: Path | None, dqn_path: Path | None = None, sb3_predict: bool = False) -> dict:
    """``{policy name: predictor}`` for the given model files (fast masked inference by default)."""
    paths = {"maskable_ppo": model_path, "masked_dqn": dqn_path}
    if all(p is None for p in paths.values()):
        return {}
    import torch

    from novacron.placement.rl import FastMaskedPolicy, load_model

    torch.set_num_threads(1)
    models = {}
    for kind, path in paths.items():
        if path is not None:
            model = load_model(kind, path)
            models[kind] = model if sb3_predict and kind == "maskable_ppo" else FastMaskedPolicy(model)
    return models


def episodes(
    loads,
    seeds,
    hosts: int,
    tasks: int,
    model_path: Path | None,
    dqn_path: Path | None = None,
    sb3_predict: bool = False,
) -> pd.DataFrame:
    models = load_models(model_path, dqn_path, sb3_predict)
    rows = []
    for load in loads:
        env = PlacementEnv(scenario=Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split="test"))
        for seed in seeds:
            for name in HEURISTICS:
                env.reset(seed=seed)  # same episode for every policy
                m = run_episode(env.sim, make_policy(name), seed=seed, clock=time.perf_counter).as_dict()
                rows.append({"policy": name, "load": load, "seed": seed, **m})
            for name, model in models.items():
                rows.append({"policy": name, "load": load, "seed": seed, **run_model(env, model, seed)})
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (policy, load), group in df.groupby(["policy", "load"], sort=False):
        row = {"policy": policy, "load": load, "seeds": len(group)}
        for metric in METRICS:
            mean, half = mean_ci95(group[metric])
            row[metric], row[f"{metric}_ci95"] = mean, half
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| load | policy | score | acceptance | wait (s) | slowdown | fragmentation "
        "| p95 RTT (ms) | µs/decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.sort_values(["load", "score"], ascending=[True, False]).iterrows():
        cells = [f"{r[m]:.3f} ± {r[m + '_ci95']:.3f}" for m in METRICS[:2]]
        cells += [f"{r[m]:.1f} ± {r[m + '_ci95']:.1f}" for m in METRICS[2:3]]
        cells += [f"{r[m]:.2f} ± {r[m + '_ci95']:.2f}" for m in METRICS[3:5]]
        cells += [f"{r[m]:.0f} ± {r[m + '_ci95']:.0f}" for m in METRICS[5:]]
        lines.append(f"| {r['load']:g} | {r['policy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, path: Path) -> None:
    loads = sorted(table["load"].unique())
    policies = list(dict.fromkeys(table["policy"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(loads)
    x = np.arange(len(policies))
    for ax, metric in zip(axes, ("score", "acceptance_rate"), strict=True):
        for i, load in enumerate(loads):
            sub = table[table["load"] == load].set_index("policy").reindex(policies)
            ax.bar(
                x + i * width,
                sub[metric],
                width,
                yerr=sub[f"{metric}_ci95"],
                label=f"load {load:g}",
                capsize=3,
            )
        ax.set_xticks(x + width * (len(loads) - 1) / 2, policies, rotation=30, ha="right")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_ylim(0.5, 1.0)
        ax.legend()
    fig.suptitle("ITP on Alibaba openb (test split), 95% CI over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default="0.5,0.9", help="comma-separated load levels")
    parser.add_argument("--seeds", type=int, default=10, help="episode seeds 0..N-1")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--model", type=Path, help="a MaskablePPO .zip to compare as well")
    parser.add_argument("--dqn-model", type=Path, help="a masked DQN (novacron itp train --algo masked_dqn)")
    parser.add_argument(
        "--sb3-predict", action="store_true", help="time SB3's model.predict for PPO (not the fast path)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/itp"))
    args = parser.parse_args(argv)
    loads = [float(x) for x in args.loads.split(",")]
    seeds = range(args.seeds)
    df = episodes(loads, seeds, args.hosts, args.tasks, args.model, args.dqn_model, args.sb3_predict)
    table = summary(df)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "compare_episodes.csv", index=False)
    table.to_csv(args.out / "compare.csv", index=False)
    (args.out / "compare.md").write_text(markdown(table))
    plot(table, args.out / "compare.png")
    print(markdown(table))
    print(f"wrote {args.out}/compare.csv, compare.md, compare.png, compare_episodes.csv")
    return table


if __name__ == "__main__":
    main()
