"""Experiment: learning curves of the RL placement runs (validation score against training steps).

Reads ``learning_curve.csv`` of every run folder under ``--runs`` (written by
``experiments/itp_train.py``) and plots, per validation load, the greedy
policy's validation score against training steps for each run, with the
heuristics ``nearest_fit`` and ``admission_nearest_fit`` on the same validation
episodes as horizontal references. Writes ``learning_curves.png`` and
``learning_curves.csv`` (the validation rows of all runs) under ``--out``.

    .venv/bin/python experiments/itp_learning_curves.py [--runs results/itp/runs] [--out results/itp]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from novacron.placement.heuristics import make_policy, run_episode  # noqa: E402
from novacron.placement.scenario import Scenario  # noqa: E402
from novacron.sim.envs.placement import PlacementEnv  # noqa: E402

REFERENCES = ("nearest_fit", "admission_nearest_fit")


def references(loads, seeds: int, hosts: int, tasks: int) -> dict:
    """Heuristic scores on the validation episodes of ``itp_train.py`` (``env.reset(seed=s)``, s < seeds)."""
    out = {}
    for load in loads:
        env = PlacementEnv(scenario=Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split="val"))
        for name in REFERENCES:
            scores = []
            for seed in range(seeds):
                env.reset(seed=seed)
                scores.append(run_episode(env.sim, make_policy(name), seed=seed).score)
            out[(name, load)] = float(np.mean(scores))
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("results/itp/runs"))
    parser.add_argument("--out", type=Path, default=Path("results/itp"))
    parser.add_argument("--val-seeds", type=int, default=3, help="as in the runs (itp_train.py --val-seeds)")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    args = parser.parse_args(argv)
    frames = []
    for path in sorted(args.runs.glob("*/learning_curve.csv")):
        try:
            df = pd.read_csv(path)
        except pd.errors.EmptyDataError:  # a run that has not logged yet
            continue
        frames.append(df[(df["split"] == "val") & (df["policy"] == "ppo")].assign(run=path.parent.name))
    if not frames:
        raise SystemExit(f"no learning_curve.csv under {args.runs}")
    curves = pd.concat(frames, ignore_index=True)
    curves["load"] = curves["load"].astype(float)
    loads = sorted(curves["load"].unique())
    refs = references(loads, args.val_seeds, args.hosts, args.tasks)
    fig, axes = plt.subplots(1, len(loads), figsize=(4 * len(loads), 3.8), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, load in zip(axes, loads, strict=True):
        for run, group in curves[curves["load"] == load].groupby("run"):
            ax.plot(group["timesteps"], group["score"], "-o", markersize=3, label=run)
        for name, style in zip(REFERENCES, ("--", ":"), strict=True):
            ax.axhline(refs[(name, load)], color="k", linestyle=style, linewidth=1, label=name)
        ax.set_title(f"validation, load {load:g}")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
        ax.set_xlabel("training steps (after imitation, if any)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[-1].legend(fontsize=7)
    fig.suptitle("MaskablePPO learning curves (greedy policy on validation episodes)")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "learning_curves.png", dpi=110)
    plt.close(fig)
    curves.to_csv(args.out / "learning_curves.csv", index=False)
    print(f"wrote {args.out}/learning_curves.png and learning_curves.csv ({curves['run'].nunique()} runs)")
    return curves


if __name__ == "__main__":
    main()
