"""Where in an episode do the policies gain? The score by arrival quarter, and after the warm-up.

Every test episode starts with an empty cluster, and the longest lifetimes are about as long as the
episode's arrival span, so the cluster fills during the first part of the episode: there, at any
nominal load, every policy places nearly everything and scores alike. This script splits each test
episode's tasks by arrival order into ``--parts`` equal parts and scores each part separately
(:func:`novacron.placement.metrics.task_rewards`: the score is the mean of these per-task terms),
paired per episode with ``nearest_fit``, beside the cluster's GPU utilisation under ``nearest_fit``
at the tasks' arrivals (how full the cluster is in that part). ``after warm-up`` is the score over
every part but the first; ``whole episode`` is the official score, unchanged: this is a reading of
it, for deciding what a benchmark of an endless stream should measure.

Policies: the two admission heuristics and the shipped learned models (each model pair averaged per
episode, as ``itp_compare.py``'s pooled rows). Same test episodes as ``itp_compare.py``
(``PlacementEnv.reset(seed=s)``). Writes under ``--out``: ``warmup_episodes.csv`` (per policy, load,
episode and part: score, nearest_fit's score, GPU utilisation), ``warmup.csv`` / ``warmup.md`` (paired
ratios per load, policy and part, mean ± 95 % CI over episodes), ``warmup.png``.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python experiments/itp_warmup.py     # ~5 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novacron.placement.cluster import GPU_MILLI  # noqa: E402
from novacron.placement.heuristics import make_policy, run_episode  # noqa: E402
from novacron.placement.metrics import mean_ci95, task_rewards  # noqa: E402
from novacron.placement.scenario import Scenario  # noqa: E402
from novacron.sim.envs.placement import PlacementEnv  # noqa: E402

HEURISTIC_ROWS = ("stream_nearest_fit", "horizon_nearest_fit")
#: learned rows: name -> the models averaged per episode
MODELS = {
    "bcstream": ("results/itp/runs/bcstream_s0/best.zip", "results/itp/runs/bcstream_s1/best.zip"),
    "bchor": ("results/itp/runs/bchor_s0/best.zip", "results/itp/runs/bchor_s1/best.zip"),
}
AFTER_WARMUP = "after warm-up"
WHOLE = "whole episode"


def gpu_utilisation_at_arrivals(sim) -> np.ndarray:
    """Per task, the share of the cluster's GPU milli in use just before it arrived (finished episode)."""
    t, out = sim.tasks, sim.outcomes
    start = np.where(out.placed, t.arrival + out.wait, np.inf)
    end = start + t.duration
    demand = t.num_gpu * t.gpu_milli
    capacity = float(sim.cluster.hosts.gpus.sum()) * GPU_MILLI
    if capacity <= 0:
        return np.zeros(len(t))
    running = (start[None, :] < t.arrival[:, None]) & (end[None, :] >= t.arrival[:, None])
    return (running * demand[None, :]).sum(axis=1) / capacity


def play(env: PlacementEnv, seed: int, predictor) -> np.ndarray:
    """The per-task rewards of one test episode played by a learned predictor."""
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = predictor.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, _ = env.step(int(action))
    return task_rewards(env.sim)


def part_rows(policy: str, load: float, seed: int, rewards, base, utilisation, parts: int) -> list[dict]:
    """One row per part, one for everything after the first part and one for the whole episode
    (its official score)."""
    bounds = np.linspace(0, len(rewards), parts + 1).astype(int)
    slices = [(str(i + 1), slice(bounds[i], bounds[i + 1])) for i in range(parts)]
    slices.append((AFTER_WARMUP, slice(bounds[1], len(rewards))))
    slices.append((WHOLE, slice(0, len(rewards))))
    return [
        {
            "policy": policy,
            "load": load,
            "seed": seed,
            "part": part,
            "score": float(np.mean(rewards[s])),
            "nearest_fit": float(np.mean(base[s])),
            "gpu_utilisation": float(np.mean(utilisation[s])),
        }
        for part, s in slices
    ]


def run(loads: list[float], seeds: int, parts: int, hosts: int, tasks: int, models: dict) -> pd.DataFrame:
    from tqdm.auto import tqdm

    from novacron.placement.rl import FastMaskedPolicy, load_model

    predictors = {
        name: [FastMaskedPolicy(load_model("maskable_ppo", ROOT / path)) for path in paths]
        for name, paths in models.items()
    }
    rows = []
    cases = [(load, seed) for load in loads for seed in range(seeds)]
    for load, seed in tqdm(cases, desc="episodes", unit="episode"):
        env = PlacementEnv(scenario=Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split="test"))
        env.reset(seed=seed)
        run_episode(env.sim, make_policy("nearest_fit"), seed=seed)
        base, utilisation = task_rewards(env.sim), gpu_utilisation_at_arrivals(env.sim)
        rows += part_rows("nearest_fit", load, seed, base, base, utilisation, parts)
        for name in HEURISTIC_ROWS:
            env.reset(seed=seed)
            run_episode(env.sim, make_policy(name), seed=seed)
            rows += part_rows(name, load, seed, task_rewards(env.sim), base, utilisation, parts)
        for name, models_of_row in predictors.items():
            rewards = np.mean([play(env, seed, p) for p in models_of_row], axis=0)  # averaged per episode
            rows += part_rows(name, load, seed, rewards, base, utilisation, parts)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (load, policy, part), group in df.groupby(["load", "policy", "part"], sort=False):
        ratio, half = mean_ci95(group["score"] / group["nearest_fit"])
        rows.append(
            {
                "load": load,
                "policy": policy,
                "part": part,
                "ratio": ratio,
                "ratio_ci95": half,
                "gpu_utilisation": group["gpu_utilisation"].mean(),
                "episodes": len(group),
            }
        )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    parts = list(dict.fromkeys(summary["part"]))
    lines = [
        "score / nearest_fit by arrival part, paired per episode (mean ± 95 % CI); "
        "GPU utilisation under nearest_fit at the part's arrivals\n",
        "| load | policy | " + " | ".join(f"part {p}" if p.isdigit() else p for p in parts) + " |",
        "|---|---|" + "---|" * len(parts),
    ]
    for load, by_load in summary.groupby("load", sort=False):
        first = by_load[by_load["policy"] == "nearest_fit"].set_index("part")["gpu_utilisation"]
        cells = [f"{first[p]:.0%}" for p in parts]
        lines.append(f"| {load:g} | GPU utilisation | " + " | ".join(cells) + " |")
        for policy, rows in by_load[by_load["policy"] != "nearest_fit"].groupby("policy", sort=False):
            r = rows.set_index("part")
            cells = [f"{r.loc[p, 'ratio']:.3f} ± {r.loc[p, 'ratio_ci95']:.3f}" for p in parts]
            lines.append(f"| {load:g} | {policy} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = list(dict.fromkeys(summary["load"]))
    fig, axes = plt.subplots(1, len(loads), figsize=(4 * len(loads), 3.6), sharey=True, squeeze=False)
    for ax, load in zip(axes[0], loads, strict=True):
        sub = summary[(summary["load"] == load) & summary["part"].str.isdigit()]
        for policy, rows in sub[sub["policy"] != "nearest_fit"].groupby("policy", sort=False):
            x = rows["part"].astype(int)
            ax.errorbar(x, rows["ratio"], yerr=rows["ratio_ci95"], marker="o", capsize=3, label=policy)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.axhline(1.1, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"load {load:g}")
        ax.set_xlabel("arrival part of the episode")
    axes[0][0].set_ylabel("score / nearest_fit (paired)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0.5,0.8,0.9,1.0", help="comma-separated load levels")
    parser.add_argument("--seeds", type=int, default=10, help="test episode seeds 0..N-1 (10)")
    parser.add_argument("--parts", type=int, default=4, help="arrival-order parts per episode (4)")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--no-models", action="store_true", help="heuristics only")
    parser.add_argument("--out", type=Path, default=Path("results/itp/warmup"))
    args = parser.parse_args(argv)
    if args.parts < 2:
        parser.error("--parts must be >= 2 (the first part is the warm-up)")
    models = {} if args.no_models else MODELS
    loads = [float(x) for x in args.loads.split(",")]
    df = run(loads, args.seeds, args.parts, args.hosts, args.tasks, models)
    summary = table(df)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "warmup_episodes.csv", index=False)
    summary.to_csv(args.out / "warmup.csv", index=False)
    text = markdown(summary)
    (args.out / "warmup.md").write_text(text)
    plot(summary, args.out / "warmup.png")
    print(text)
    return summary


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
