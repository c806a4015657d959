"""Does ``fgd`` do what its paper says? Fill an openb cluster until it refuses, as Weng et al. did.

The paper behind openb (Weng et al., "Beware of Fragmentation", USENIX ATC 2023) evaluates
schedulers by *workload inflation*: tasks drawn from the trace arrive one after another and never
leave, each placed where the scheduler says or turned away at once if no host fits, until the
tasks that arrived ask for more GPU than the cluster has. A scheduler that fragments less
allocates more of the cluster's GPUs before it starts turning tasks away. Their headline: FGD
leaves markedly fewer GPUs unallocated than best fit, dot product and random fit.

This script reruns that on our implementation: a cluster of ``--hosts`` hosts sampled from the
openb node list (:meth:`Scenario.cluster`, seed ``--cluster-seed``), tasks drawn with replacement
from the whole pod list (seeded per episode), one per second, lifetimes longer than the run, a
task rejected when it fits nowhere on arrival (patience 0.5 s). It records, after each arrival, the
GPU asked for so far and the GPU allocated, both as shares of the cluster's GPU. It is a check of
the packing alone: geography plays no part (every task comes from one region), and the benchmark
score of ``itp_compare.py`` is not involved.

Writes under ``--out`` (default ``results/itp/fgd/inflation``): ``inflation_episodes.csv`` (per
policy and seed, up to 1,000 evenly spaced arrivals), ``inflation.csv`` / ``inflation.md`` (GPU
allocated when the arrived demand reaches each of ``--points``, mean ± 95 % CI over seeds) and
``inflation.png``.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python experiments/itp_fgd.py      # ~45 s
    OMP_NUM_THREADS=1 .venv/bin/python experiments/itp_fgd.py --hosts 1523 --seeds 5 --until 1.2 \
        --points 0.8,0.9,0.95,1.0,1.1 --out results/itp/fgd/inflation_full   # the whole cluster, ~3 min
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novacron.placement.cluster import GPU_MILLI  # noqa: E402
from novacron.placement.heuristics import make_policy, run_episode  # noqa: E402
from novacron.placement.metrics import mean_ci95  # noqa: E402
from novacron.placement.scenario import Scenario, cached_tasks  # noqa: E402
from novacron.placement.state import PlacementSim  # noqa: E402

#: FGD and the paper's baselines, then two more of ours
POLICIES = (
    "fgd",
    "best_fit",
    "dot_product",
    "gpu_packing",
    "gpu_clustering",
    "random",
    "first_fit",
    "worst_fit",
)
#: lifetimes longer than any run: nothing leaves
FOREVER = 1e12
#: arrivals per episode kept in ``inflation_episodes.csv``
EPISODE_ROWS = 1000


def inflation_episode(scenario: Scenario, seed: int, until: float) -> PlacementSim:
    """Tasks drawn from the pod list, one per second, until they ask for ``until`` x the GPU."""
    cluster = scenario.cluster()
    pool = cached_tasks(str(scenario.pods))
    capacity = float(cluster.hosts.gpus.sum()) * GPU_MILLI
    demand = (pool.num_gpu * pool.gpu_milli).astype(np.float64)
    if capacity <= 0 or demand.sum() <= 0:
        raise ValueError("workload inflation needs GPUs in the cluster and GPU tasks in the pod list")
    rng = np.random.default_rng(seed)
    drawn = np.zeros(0, dtype=np.int64)
    while demand[drawn].sum() < until * capacity:  # draw in blocks of about what it takes
        block = int(np.ceil(until * capacity / demand.mean())) + 16
        drawn = np.concatenate([drawn, rng.integers(len(pool), size=block)])
    n = int(np.searchsorted(np.cumsum(demand[drawn]), until * capacity)) + 1
    tasks = pool.take(drawn[:n])
    tasks = replace(
        tasks,
        arrival=np.arange(n, dtype=np.float64),
        duration=np.full(n, FOREVER),
        origin=np.zeros(n, dtype=np.int64),
    )
    return PlacementSim(cluster, tasks, max_wait=0.5)


def curve(sim: PlacementSim) -> pd.DataFrame:
    """After each arrival of a finished run: GPU asked for and allocated, as shares of the cluster's."""
    t = sim.tasks
    capacity = float(sim.cluster.hosts.gpus.sum()) * GPU_MILLI
    demand = t.num_gpu * t.gpu_milli
    return pd.DataFrame(
        {
            "arrival": np.arange(len(t)),
            "arrived_gpu": np.cumsum(demand) / capacity,
            "allocated_gpu": np.cumsum(demand * sim.outcomes.placed) / capacity,
            "rejected_tasks": np.cumsum(~sim.outcomes.placed),
        }
    )


def run(policies, seeds: int, hosts: int, cluster_seed: int, until: float) -> pd.DataFrame:
    scenario = Scenario(n_hosts=hosts, cluster_seed=cluster_seed)
    frames = []
    for seed in range(seeds):
        for name in policies:
            sim = inflation_episode(scenario, seed, until)
            run_episode(sim, make_policy(name), seed=seed)
            frames.append(curve(sim).assign(policy=name, seed=seed))
        print(f"seed {seed}: {len(policies)} policies done", flush=True)
    return pd.concat(frames, ignore_index=True)


def at_points(df: pd.DataFrame, points: list[float]) -> pd.DataFrame:
    """Per policy and point: the GPU allocated when the arrived demand first reaches the point."""
    rows = []
    for (policy, seed), episode in df.groupby(["policy", "seed"], sort=False):
        reached = episode["arrived_gpu"].to_numpy()
        for point in points:
            i = min(int(np.searchsorted(reached, point)), len(reached) - 1)
            allocated = episode["allocated_gpu"].iloc[i]
            rows.append({"policy": policy, "seed": seed, "point": point, "allocated": allocated})
    per_seed = pd.DataFrame(rows)
    out = []
    for (policy, point), group in per_seed.groupby(["policy", "point"], sort=False):
        mean, ci = mean_ci95(group["allocated"].to_numpy())
        row = {"policy": policy, "arrived_gpu": point, "allocated_gpu": mean, "ci95": ci}
        out.append({**row, "seeds": len(group)})
    return pd.DataFrame(out)


def thin(df: pd.DataFrame, rows: int) -> pd.DataFrame:
    """At most ``rows`` evenly spaced arrivals per (policy, seed), the last always kept: enough to
    redraw the curves, small enough to keep in the repository (the table reads every arrival)."""
    keep = []
    for _, episode in df.groupby(["policy", "seed"], sort=False):
        n = len(episode)
        keep.append(episode.iloc[np.unique(np.linspace(0, n - 1, min(n, rows)).round().astype(int))])
    return pd.concat(keep)


def markdown(table: pd.DataFrame) -> str:
    cells = zip(table["allocated_gpu"], table["ci95"], strict=True)
    wide = table.assign(cell=[f"{m:.3f} ± {c:.3f}" for m, c in cells])
    wide = wide.pivot(index="policy", columns="arrived_gpu", values="cell")
    last = table[table["arrived_gpu"] == table["arrived_gpu"].max()].set_index("policy")["allocated_gpu"]
    wide = wide.loc[last.sort_values(ascending=False).index]
    head = "| policy | " + " | ".join(f"GPU asked {p:.0%}" for p in wide.columns) + " |"
    lines = [head, "|---|" + "---|" * len(wide.columns)]
    lines += [f"| {policy} | " + " | ".join(row) + " |" for policy, row in wide.iterrows()]
    return "\n".join(lines) + "\n"


def plot(df: pd.DataFrame, path: Path) -> None:
    """GPU allocated against GPU asked, mean over seeds: the whole run, and a close-up of the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    grid = np.linspace(0, df["arrived_gpu"].max(), 400)
    for policy, frame in df.groupby("policy", sort=False):
        curves = [np.interp(grid, e["arrived_gpu"], e["allocated_gpu"]) for _, e in frame.groupby("seed")]
        for ax in axes:
            ax.plot(grid, np.mean(curves, axis=0), label=policy)
    for ax in axes:
        ax.plot(grid, np.minimum(grid, 1.0), color="grey", linestyle=":", label="ideal")
        ax.set_xlabel("GPU asked for by the tasks arrived (share of the cluster's)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("GPU allocated (share)")
    axes[0].set_title("Workload inflation on openb (Weng et al., ATC 2023)")
    axes[1].set_xlim(0.85, grid[-1])
    axes[1].set_ylim(0.85, 1.0)
    axes[1].set_title("the end, close up (mean over seeds)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated heuristics")
    parser.add_argument("--seeds", type=int, default=10, help="task-draw seeds 0..N-1 (10)")
    parser.add_argument("--hosts", type=int, default=128, help="hosts sampled from the openb node list")
    parser.add_argument("--cluster-seed", type=int, default=0)
    parser.add_argument("--until", type=float, default=1.3, help="stop once this share of GPU is asked")
    parser.add_argument("--points", default="0.8,0.9,1.0,1.1,1.2", help="where to read the GPU allocated")
    parser.add_argument("--out", type=Path, default=Path("results/itp/fgd/inflation"))
    args = parser.parse_args(argv)
    policies = args.policies.split(",")
    df = run(policies, args.seeds, args.hosts, args.cluster_seed, args.until)
    table = at_points(df, [float(p) for p in args.points.split(",")])
    args.out.mkdir(parents=True, exist_ok=True)
    thin(df, EPISODE_ROWS).to_csv(args.out / "inflation_episodes.csv", index=False, float_format="%.6g")
    table.to_csv(args.out / "inflation.csv", index=False)
    (args.out / "inflation.md").write_text(markdown(table))
    plot(df, args.out / "inflation.png")
    print(markdown(table))
    return table


if __name__ == "__main__":
    main()
