"""Experiment: does a PPO bandwidth allocator beat the four baselines on held-out HSDPA traces?

Setup: the Norway HSDPA files are split 80/20 *by file* (seeded); PPO trains on
``novacron/BandwidthAllocation-v0`` over the training files only; then PPO (deterministic actions)
and the baselines (equal share, proportional to remaining bytes, earliest deadline first,
RobustMPC-style) are evaluated on every held-out file with several arrival seeds each. The table
gives the mean and 95% confidence interval (normal approximation, over episodes) of the episode
return, goodput over capacity and deadline misses. Writes ``allocation.csv``, ``allocation.json``
and ``allocation.png`` under ``results/pba/``.

    .venv/bin/python experiments/pba_allocation.py [--seed 0] [--timesteps 300000] [--eval-seeds 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from novacron.prediction.allocation import baselines  # noqa: E402
from novacron.prediction.traces import data_dir, load_traces, split_by_file  # noqa: E402
from novacron.sim.envs.bandwidth import BandwidthAllocationEnv, run_episode  # noqa: E402

METRICS = ("return", "goodput_over_capacity", "misses")


def train_ppo(train, seed: int, timesteps: int):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: BandwidthAllocationEnv(traces=train), n_envs=4, seed=seed)
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=512,
        batch_size=256,
        n_epochs=5,
        learning_rate=3e-4,
        gamma=0.98,
        ent_coef=0.0,
        policy_kwargs=dict(net_arch=[128, 128], log_std_init=-1.0),
        seed=seed,
        verbose=0,
    )
    model.learn(total_timesteps=timesteps)
    return model


def evaluate(policies: dict, test, eval_seeds: int) -> pd.DataFrame:
    env = BandwidthAllocationEnv(traces=test)
    rows = []
    for name, policy in policies.items():
        for trace_index in range(len(test)):
            for s in range(eval_seeds):
                seed = 1000 + 100 * trace_index + s
                result = run_episode(env, policy, seed=seed, options={"trace_index": trace_index})
                rows.append({"policy": name, "trace": trace_index, "seed": seed, **result})
    return pd.DataFrame(rows)


def summarise(episodes: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for name, group in episodes.groupby("policy", sort=False):
        row = {"policy": name, "episodes": len(group)}
        for m in METRICS:
            values = group[m].to_numpy(dtype=float)
            row[m] = values.mean()
            row[f"{m}_ci95"] = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
        rows.append(row)
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.5))
    for ax, m in zip(axes, METRICS, strict=True):
        ax.bar(table["policy"], table[m], yerr=table[f"{m}_ci95"], capsize=3, color="tab:blue")
        ax.set_title(m.replace("_", " "))
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle("Bandwidth allocation on held-out HSDPA traces (mean, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=300_000)
    parser.add_argument("--eval-seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/pba"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    traces = load_traces([data_dir("norway_hsdpa")])
    train, test = split_by_file(traces, 0.2, np.random.default_rng(args.seed))
    print(f"{len(train)} training files, {len(test)} held-out files")
    model = train_ppo(train, args.seed, args.timesteps)

    def ppo(obs):
        return model.predict(obs, deterministic=True)[0]

    policies = {"ppo": ppo, **{b.name: b for b in baselines()}}
    episodes = evaluate(policies, test, args.eval_seeds)
    table = summarise(episodes)

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "allocation.csv", index=False)
    summary = {
        "seed": args.seed,
        "timesteps": args.timesteps,
        "train_files": [t.attrs["name"] for t in train],
        "test_files": [t.attrs["name"] for t in test],
        "table": table.to_dict(orient="records"),
    }
    (args.out / "allocation.json").write_text(json.dumps(summary, indent=2))
    plot(table, args.out / "allocation.png")
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
