"""Experiment: a stronger teacher than ``patient_nearest_fit`` (``horizon_nearest_fit``), on the val split.

Two steps, both on ``val`` episodes only (the test split is for ``experiments/itp_compare.py``):

``breakdown``
    Where each policy's score goes at a load: the share of tasks rejected that are big
    (resource-time above the admission threshold) or small, the RTT penalty of the placed
    ones, the share placed outside their nearest region, and each of these per origin region
    (``breakdown.csv``). This is what showed that ``patient_nearest_fit`` loses most by
    rejecting every big task, including those that arrive when what they hold would outlive
    the remaining arrivals, and that its RTT penalty comes from the region with few GPUs.
``reference``
    The heuristics on the trainers' validation episodes (``val_reference.csv``), beside the
    learned policies' ``learning_curve.csv``.
``paired``
    Per-episode ratios between heuristics' rows of ``experiments/itp_compare.py``'s episodes CSV
    (the comparison script pairs only learned rows): ``heuristics_paired.csv|md``.
``sweep``
    A grid over :class:`novacron.placement.heuristics.HorizonNearestFitPolicy`'s settings
    (``--grid``, ``key=value,...`` groups separated by ``;``), with ``nearest_fit`` and
    ``patient_nearest_fit`` on the same episodes (``teacher_sweep.csv``; the table printed is
    the mean score per load and the mean over loads).

    nice -n 19 .venv/bin/python experiments/itp_teacher.py breakdown --load 0.8 --seeds 8
    nice -n 19 .venv/bin/python experiments/itp_teacher.py sweep --loads 0.5,0.7,0.8,0.9,1.0 --seeds 8 \\
        --grid "tail=0;tail=0.45,utilisation=0.8,threshold=0.35;tail=0.45,utilisation=0.8"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from novacron.placement.heuristics import HorizonNearestFitPolicy, make_policy, resource_times, run_episode
from novacron.placement.metrics import RTT_WEIGHT
from novacron.placement.scenario import Scenario

REFERENCES = ("nearest_fit", "patient_nearest_fit")


def parse_grid(text: str) -> list[dict[str, float]]:
    """``"tail=0.45,utilisation=0.8;tail=0"`` -> one settings dict per ``;``-separated group."""
    configs = []
    for group in text.split(";"):
        group = group.strip()
        config = {}
        for item in filter(None, (part.strip() for part in group.split(","))):
            key, value = item.split("=")
            config[key.strip()] = float(value)
        configs.append(config)
    return configs


def label(config: dict[str, float]) -> str:
    return "horizon(" + ",".join(f"{k}={v:g}" for k, v in config.items()) + ")"


def losses(sim, threshold: float) -> dict[str, float]:
    """Where one finished episode's score went (shares of the episode's tasks)."""
    out, t = sim.outcomes, sim.tasks
    n = len(t)
    big = resource_times(sim) > threshold
    penalty = np.where(out.placed, RTT_WEIGHT * out.rtt_ms / sim.cluster.rtt_ms.max(), 0.0)
    far = out.placed & (out.rtt_ms > sim.host_rtt_ms[t.origin].min(axis=1))
    row = {
        "rejected_big": float((out.rejected & big).sum() / n),
        "rejected_small": float((out.rejected & ~big).sum() / n),
        "rtt_penalty": float(penalty.sum() / n),
        "placed_far": float(far.sum() / n),
    }
    for region in range(len(sim.cluster.regions)):
        mine = t.origin == region
        row[f"placed_far_origin{region}"] = float(far[mine].mean()) if mine.any() else 0.0
        row[f"rtt_penalty_origin{region}"] = float(penalty[mine].mean()) if mine.any() else 0.0
    return row


def breakdown(args) -> pd.DataFrame:
    scenario = Scenario(n_hosts=args.hosts, n_tasks=args.tasks, load=args.load, split="val")
    cluster = scenario.cluster()
    rows = []
    for name in args.policies.split(","):
        for seed in range(args.seeds):
            sim = scenario.episode(seed, cluster)
            policy = make_policy(name)
            m = run_episode(sim, policy, seed=seed)
            threshold = getattr(policy, "threshold", 0.35)
            rows.append(
                {"policy": name, "load": args.load, "seed": seed, "score": m.score, **losses(sim, threshold)}
            )
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "breakdown.csv", index=False)
    print(df.drop(columns=["seed", "load"]).groupby("policy").mean().round(4).T.to_string())
    return df


def sweep(args) -> pd.DataFrame:
    configs = parse_grid(args.grid)
    rows = []
    for load in args.loads:
        scenario = Scenario(n_hosts=args.hosts, n_tasks=args.tasks, load=load, split="val")
        cluster = scenario.cluster()
        for seed in range(args.seeds):
            for name in REFERENCES:
                m = run_episode(scenario.episode(seed, cluster), make_policy(name), seed=seed)
                rows.append({"policy": name, "load": load, "seed": seed, **m.as_dict()})
            for config in configs:
                policy = HorizonNearestFitPolicy(**config)
                m = run_episode(scenario.episode(seed, cluster), policy, seed=seed)
                rows.append({"policy": label(config), "load": load, "seed": seed, **m.as_dict()})
        print(f"load {load:g} done", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "teacher_sweep.csv", index=False)
    table = df.pivot_table(index="policy", columns="load", values="score", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    print(table.round(4).to_string())
    return df


def paired(args) -> pd.DataFrame:
    """Paired per-episode ratios between heuristics' rows of an ``itp_compare.py`` episodes CSV.

    ``experiments/itp_compare.py`` pairs only learned rows with a baseline; this does the same
    for heuristic rows (e.g. ``horizon_nearest_fit`` / ``nearest_fit``), mean ± 95 % CI.
    """
    from novacron.placement.metrics import mean_ci95

    df = pd.concat([pd.read_csv(path) for path in args.episodes], ignore_index=True)
    score = df.drop_duplicates(["policy", "load", "seed"]).set_index(["policy", "load", "seed"])["score"]
    score = score.sort_index()  # (a sorted index: label lookups by (policy, load) stay fast)
    rows = []
    for name in args.policies.split(","):
        for baseline in args.baselines.split(","):
            if name == baseline:
                continue
            for load in sorted(df["load"].unique()):
                a, b = score.loc[name, load], score.loc[baseline, load]
                ratio = (a / b.loc[a.index]).to_numpy()
                mean, half = mean_ci95(ratio)
                rows.append(
                    {
                        "policy": name,
                        "baseline": baseline,
                        "load": load,
                        "ratio": mean,
                        "ratio_ci95": half,
                        "n": len(ratio),
                    }
                )
    out = pd.DataFrame(rows)
    out.to_csv(args.out / "heuristics_paired.csv", index=False)
    lines = ["| policy | baseline | load | ratio, paired per episode | episodes |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.policy} | {r.baseline} | {r.load:g} | {r.ratio:.3f} ± {r.ratio_ci95:.3f} | {r.n} |"
        for r in out.itertuples()
    ]
    (args.out / "heuristics_paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


def reference(args) -> pd.DataFrame:
    """Heuristics on the validation episodes the trainers use (``PlacementEnv.reset(seed=i)``, which
    draws the episode from the seed: other val episodes than ``breakdown`` and ``sweep``, which call
    ``Scenario.episode(i)``), so that learned policies' ``learning_curve.csv`` rows have references."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from itp_train import _env, heuristic_reference

    envs = {load: _env("val", load, args.hosts, args.tasks) for load in args.loads}
    rows = []
    for name in args.policies.split(","):
        for load, (score, acc) in heuristic_reference(name, envs, range(args.seeds)).items():
            rows.append({"policy": name, "load": load, "score": score, "acceptance_rate": acc})
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "val_reference.csv", index=False)
    print(df.pivot_table(index="policy", columns="load", values="score").round(4).to_string())
    return df


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    b = sub.add_parser("breakdown")
    b.add_argument("--load", type=float, default=0.8)
    b.add_argument("--policies", default="nearest_fit,patient_nearest_fit,horizon_nearest_fit")
    s = sub.add_parser("sweep")
    s.add_argument("--loads", default="0.5,0.7,0.8,0.9,1.0")
    s.add_argument(
        "--grid", default="tail=0;tail=0.45,utilisation=0.8,threshold=0.35;tail=0.45,utilisation=0.8"
    )
    q = sub.add_parser("paired")
    q.add_argument("--episodes", type=Path, nargs="+", required=True, help="compare_episodes.csv file(s)")
    q.add_argument("--policies", default="horizon_nearest_fit,patient_nearest_fit")
    q.add_argument("--baselines", default="nearest_fit,patient_nearest_fit")
    q.add_argument("--out", type=Path, default=Path("results/itp/horizon"))
    r = sub.add_parser("reference")
    r.add_argument("--loads", default="0.5,0.8,0.9,1.0")
    r.add_argument("--policies", default="nearest_fit,patient_nearest_fit,horizon_nearest_fit")
    for p in (b, s, r):
        p.add_argument("--seeds", type=int, default=8, help="val episodes per load (seeds 0..N-1)")
        p.add_argument("--hosts", type=int, default=16)
        p.add_argument("--tasks", type=int, default=512)
        p.add_argument("--out", type=Path, default=Path("results/itp/teacher"))
    args = parser.parse_args(argv)
    if args.step in ("sweep", "reference"):
        args.loads = [float(x) for x in args.loads.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    {"breakdown": breakdown, "sweep": sweep, "paired": paired, "reference": reference}[args.step](args)


if __name__ == "__main__":
    main()
