"""How far from the best possible are the placement policies? The LP bound beside their scores.

For every test episode (the same episodes as ``itp_compare.py``: ``PlacementEnv.reset(seed=s)`` on
the test split) this computes :func:`novacron.placement.bound.score_upper_bound`, a clairvoyant,
fluid-cluster relaxation no policy can beat, and sets the policies' saved scores beside it:

* ``bound / nearest_fit``: the most any policy could gain over the issue's baseline (a ceiling, not
  the optimum: the relaxation ignores packing);
* per policy, ``score / nearest_fit`` and the *share of the headroom* it takes,
  ``(score - nearest_fit) / (bound - nearest_fit)``, both paired per episode, mean ± 95 % CI over
  episodes (pooled rows of several trained models are averaged per episode first).

Policy scores are read from ``compare_episodes.csv`` files written by ``itp_compare.py`` (no policy
is re-run); ``nearest_fit`` is re-run on every episode and must match each file's, so a file from
other episodes is refused rather than paired wrongly. Every saved score is checked to lie below the
bound (a score above it would mean a bug in one or the other).

Writes under ``--out``: ``bound_episodes.csv`` (per episode: bound, the LP's admitted share,
nearest_fit), ``bound.csv`` and ``bound.md`` (per load and policy), ``bound.png``.

    nice -n 19 .venv/bin/python experiments/itp_bound.py      # ~3 min for 5 loads x 10 episodes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novacron.placement.bound import START_BINS, score_upper_bound  # noqa: E402
from novacron.placement.heuristics import make_policy, run_episode  # noqa: E402
from novacron.placement.metrics import mean_ci95  # noqa: E402
from novacron.placement.scenario import Scenario  # noqa: E402
from novacron.sim.envs.placement import PlacementEnv  # noqa: E402

#: the saved episodes read by default, and the policies shown from them
EPISODES = (
    "results/itp/horizon/compare_episodes.csv",
    "results/itp/stream/compare_episodes.csv",
    "results/itp/bcstream/compare_episodes.csv",
)
POLICIES = (
    "stream_nearest_fit",
    "horizon_nearest_fit",
    "maskable_ppo:bcstream:pooled",
    "maskable_ppo:bchor:pooled",
)


def bounds(loads: list[float], seeds: int, hosts: int, tasks: int, start_bins: int) -> pd.DataFrame:
    """Per test episode: the LP bound, the LP's admitted share and ``nearest_fit``'s score."""
    from tqdm.auto import tqdm

    rows = []
    cases = [(load, seed) for load in loads for seed in range(seeds)]
    for load, seed in tqdm(cases, desc="episodes", unit="episode"):
        env = PlacementEnv(scenario=Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split="test"))
        env.reset(seed=seed)
        bound = score_upper_bound(env.sim, start_bins=start_bins)
        env.reset(seed=seed)
        base = run_episode(env.sim, make_policy("nearest_fit"), seed=seed).score
        rows.append(
            {
                "load": load,
                "seed": seed,
                "bound": bound.score,
                "lp_admitted": float(bound.admitted.mean()),
                "nearest_fit": base,
            }
        )
    return pd.DataFrame(rows)


def saved_scores(paths: list[Path], per_episode: pd.DataFrame, policies: tuple[str, ...]) -> pd.DataFrame:
    """The policies' scores from ``compare_episodes.csv`` files, one row per (policy, load, seed).

    Raises ``ValueError`` naming the file if its ``nearest_fit`` differs from the re-run one (other
    episodes) or is missing for an episode it scores, or if any saved score exceeds the bound.
    """
    key = per_episode.set_index(["load", "seed"])
    found = []
    for path in paths:
        saved = pd.read_csv(path)
        check = saved[saved["policy"] == "nearest_fit"].join(key, on=["load", "seed"], how="inner")
        if not np.allclose(check["score"], check["nearest_fit"], rtol=0, atol=1e-9):
            raise ValueError(f"{path}: its nearest_fit scores differ from these episodes'")
        rows = saved.join(key, on=["load", "seed"], how="inner")
        used = rows[rows["policy"].isin(policies)].set_index(["load", "seed"]).index
        if not used.isin(check.set_index(["load", "seed"]).index).all():
            raise ValueError(f"{path}: no nearest_fit row for some of its episodes to check them by")
        above = rows[rows["score"] > rows["bound"] + 1e-9]
        if len(above):
            r = above.iloc[0]
            raise ValueError(f"{path}: {r.policy} scores {r.score:.4f} above the bound {r.bound:.4f} "
                             f"(load {r.load:g}, seed {r.seed})")
        found.append(rows[rows["policy"].isin(policies)][["policy", "load", "seed", "score"]])
    scores = pd.concat(found) if found else pd.DataFrame(columns=["policy", "load", "seed", "score"])
    # a pooled row has one score per trained model: average them per episode; a policy saved in
    # several files (the same deterministic episodes) counts once
    return scores.groupby(["policy", "load", "seed"], as_index=False)["score"].mean()


def table(per_episode: pd.DataFrame, scores: pd.DataFrame, policies: tuple[str, ...]) -> pd.DataFrame:
    """Per load: the bound's ratio to nearest_fit, then each policy's ratio and headroom share."""
    rows = []
    for load, group in per_episode.groupby("load"):
        ratio, ratio_half = mean_ci95(group["bound"] / group["nearest_fit"])
        row = {
            "load": load,
            "episodes": len(group),
            "nearest_fit": group["nearest_fit"].mean(),
            "bound": group["bound"].mean(),
            "bound_ratio": ratio,
            "bound_ratio_ci95": ratio_half,
            "lp_admitted": group["lp_admitted"].mean(),
        }
        for policy in policies:
            mine = scores[(scores["policy"] == policy) & (scores["load"] == load)]
            paired = mine.merge(group, on=["load", "seed"])
            if paired.empty:
                continue
            base = paired["nearest_fit"]
            gain, room = paired["score"] - base, paired["bound"] - base
            row[f"{policy}:ratio"], row[f"{policy}:ratio_ci95"] = mean_ci95(paired["score"] / base)
            row[f"{policy}:headroom"], row[f"{policy}:headroom_ci95"] = mean_ci95(gain / room.where(room > 0))
            row[f"{policy}:episodes"] = len(paired)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, policies: tuple[str, ...]) -> str:
    shown = [p for p in policies if f"{p}:ratio" in summary]
    head = "| load | nearest_fit score | bound / nearest_fit | LP admits | " + " | ".join(
        f"{p.removeprefix('maskable_ppo:')}: ratio (share of headroom)" for p in shown
    )
    lines = [head + " |", "|---" * (4 + len(shown)) + "|"]
    for r in summary.to_dict("records"):
        cells = [
            f"{r['load']:g}",
            f"{r['nearest_fit']:.3f}",
            f"{r['bound_ratio']:.3f} ± {r['bound_ratio_ci95']:.3f}",
            f"{r['lp_admitted']:.1%}",
        ]
        for p in shown:
            if np.isnan(r.get(f"{p}:ratio", np.nan)):
                cells.append("")
                continue
            cells.append(
                f"{r[f'{p}:ratio']:.3f} ± {r[f'{p}:ratio_ci95']:.3f} "
                f"({r[f'{p}:headroom']:.0%} ± {r[f'{p}:headroom_ci95']:.0%})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: pd.DataFrame, policies: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = summary["load"]
    ax.errorbar(x, summary["bound_ratio"], yerr=summary["bound_ratio_ci95"], color="black",
                linestyle="--", marker="s", capsize=3, label="LP bound (clairvoyant, fluid)")
    for p in policies:
        if f"{p}:ratio" not in summary:
            continue
        ax.errorbar(x, summary[f"{p}:ratio"], yerr=summary[f"{p}:ratio_ci95"], marker="o", capsize=3,
                    label=p.removeprefix("maskable_ppo:"))
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.axhline(1.1, color="grey", linewidth=0.8, linestyle=":", label="issue 5 target (1.10)")
    ax.set_xlabel("offered load")
    ax.set_ylabel("score / nearest_fit (paired, mean ± 95 % CI)")
    ax.set_title("ITP test split: policies against the LP upper bound")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0.5,0.7,0.8,0.9,1.0", help="comma-separated load levels")
    parser.add_argument("--seeds", type=int, default=10, help="test episode seeds 0..N-1 (10)")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument("--start-bins", type=int, default=START_BINS, help="bins of the waiting window")
    parser.add_argument("--episodes", type=Path, action="append",
                        help="compare_episodes.csv files to pair (default: horizon, stream, bcstream)")
    parser.add_argument("--policy", action="append", help="policies to show (default: the four reported)")
    parser.add_argument("--out", type=Path, default=Path("results/itp/bound"))
    args = parser.parse_args(argv)
    policies = tuple(args.policy or POLICIES)
    paths = args.episodes or [ROOT / p for p in EPISODES]
    per_episode = bounds([float(x) for x in args.loads.split(",")], args.seeds, args.hosts, args.tasks,
                         args.start_bins)
    scores = saved_scores(paths, per_episode, policies)
    summary = table(per_episode, scores, policies)
    args.out.mkdir(parents=True, exist_ok=True)
    per_episode.to_csv(args.out / "bound_episodes.csv", index=False)
    summary.to_csv(args.out / "bound.csv", index=False)
    text = markdown(summary, policies)
    (args.out / "bound.md").write_text(text)
    plot(summary, policies, args.out / "bound.png")
    print(text)
    return summary


if __name__ == "__main__":
    main()
