"""Experiment: placement heuristics (and trained RL policies) per load level, on unseen tasks.

Runs every heuristic (and, with ``--model PATH``, a MaskablePPO model trained by
``novacron itp train`` or ``experiments/itp_train.py``, the option repeated for
several training seeds; with ``--dqn-model PATH``, a masked DQN trained by
``novacron itp train --algo masked_dqn`` or ``experiments/itp_train_dqn.py``, also
repeatable) on episodes of ``novacron/Placement-v0`` drawn from the
*test* part of the pod list (the last 30 %, which training never sees), at each
load level, over ``--seeds`` episode seeds. Writes under ``--out``
(default ``results/itp/``):

* ``compare_episodes.csv``: one row per (policy, load, seed);
* ``compare.csv`` and ``compare.md``: mean and 95 % CI per (policy, load) of the
  primary score, acceptance rate, mean wait, slowdown, fragmentation, p95 RTT to
  origin and decision latency per placement (timed with ``time.perf_counter``;
  models decide through :class:`novacron.placement.rl.FastMaskedPolicy` unless
  ``--sb3-predict`` asks for SB3's ``model.predict``);
* ``compare.png``: score and acceptance against load per policy, with CI bars;
* ``paired.csv`` and ``paired.md``: each learned row's score over ``nearest_fit``'s,
  paired per episode (mean and 95 % CI of the per-episode ratio, against the targets);
  ``--paired-baselines nearest_fit,patient_nearest_fit`` pairs with more baselines
  (the targets apply to ``nearest_fit`` only);
* ``pooled.md``: when training seeds were pooled, one table per pooled row: per load,
  each seed's and the pooled score and the pooled paired ratios over the baselines.

With several ``--model`` files, or one in a run folder (``<config>_s<seed>``), each
gets a row named ``maskable_ppo:<run>`` (the model's folder); runs of two or more seeds
of one config (``experiments/itp_train.py`` output folders ``<config>_s<seed>``) are
also pooled into ``maskable_ppo:<config>:pooled``; the same for several ``--dqn-model``
files (``masked_dqn:<run>``, ``masked_dqn:<config>:pooled``; one alone is ``masked_dqn``)
and ``--td3-model`` files (TD3 over the continuous relaxation, ``novacron itp train --algo td3``
or ``experiments/itp_train_td3.py``: ``td3``, ``td3:<run>``, ``td3:<config>:pooled``),
mean and CI are over (training seed, episode seed) pairs. ``targets.md`` compares
each model and pooled row with the best placement heuristic per load.

    .venv/bin/python experiments/itp_compare.py [--loads 0.5,0.7,0.8,0.9,1.0] [--seeds 10]
        [--model PATH [--model PATH ...]] [--dqn-model PATH [--dqn-model PATH ...]] [--sb3-predict]
        [--td3-model PATH [--td3-model PATH ...]]
        [--paired-baselines nearest_fit,patient_nearest_fit]
    .venv/bin/python experiments/itp_compare.py --from-episodes A/compare_episodes.csv B/compare_episodes.csv
    .venv/bin/python experiments/itp_compare.py --heuristics patient_nearest_fit --out OUT  (a subset)

Data: Alibaba cluster-trace-gpu-v2023 (openb; Weng et al., ATC 2023) and Azure
inter-region RTTs (CC BY 4.0); see novacron/data/README.md.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from novacron.placement.heuristics import HEURISTICS, HORIZON_HEURISTICS, make_policy, run_episode  # noqa: E402
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
    "accepted_work",
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


def _paths(path_or_paths) -> list[Path]:
    """``None``, one path or a list of them, as a list."""
    if path_or_paths is None:
        return []
    if isinstance(path_or_paths, str | Path):
        return [Path(path_or_paths)]
    return [Path(p) for p in path_or_paths]


def load_models(model_path, dqn_path=None, sb3_predict: bool = False, td3_path=None) -> dict:
    """``{policy name: predictor}`` for the given model files (fast masked inference by default).

    ``model_path`` is one MaskablePPO file, a list of them (one per training seed), or None;
    ``dqn_path`` the same for masked DQNs (one: row ``masked_dqn``; several: ``masked_dqn:<run>``);
    ``td3_path`` for TD3 (``td3``, or ``td3:<run>`` for several or a run folder), loaded by
    the command line's :func:`~novacron.cli.itp_cmd.load_predictor`.
    """
    ppo_paths, dqn_paths, td3_paths = _paths(model_path), _paths(dqn_path), _paths(td3_path)
    if not ppo_paths and not dqn_paths and not td3_paths:
        return {}
    import torch

    from novacron.cli.itp_cmd import load_predictor
    from novacron.placement.rl import FastMaskedPolicy, load_model

    torch.set_num_threads(1)
    models = {}
    for path in ppo_paths:
        path = Path(path)
        # several models, or one from a run folder (<config>_s<seed>): named by the run
        named = len(ppo_paths) > 1 or re.search(r"_s\d+$", path.parent.name)
        name = f"maskable_ppo:{path.parent.name}" if named else "maskable_ppo"
        model = load_model("maskable_ppo", path)
        models[name] = model if sb3_predict else FastMaskedPolicy(model)
    for path in dqn_paths:
        name = f"masked_dqn:{path.parent.name}" if len(dqn_paths) > 1 else "masked_dqn"
        if name in models:
            raise ValueError(f"two DQN models from run folders named {path.parent.name!r}")
        models[name] = FastMaskedPolicy(load_model("masked_dqn", path))
    for path in td3_paths:
        named = len(td3_paths) > 1 or re.search(r"_s\d+$", path.parent.name)
        name = f"td3:{path.parent.name}" if named else "td3"
        if name in models:
            raise ValueError(f"two TD3 models from run folders named {path.parent.name!r}")
        models[name] = load_predictor("td3", path)
    return models


def episodes(
    loads,
    seeds,
    hosts: int,
    tasks: int,
    model_path=None,
    dqn_path=None,
    sb3_predict: bool = False,
    heuristics=tuple(HEURISTICS),
    td3_path=None,
) -> pd.DataFrame:
    models = load_models(model_path, dqn_path, sb3_predict, td3_path)
    rows = []
    for load in loads:
        env = PlacementEnv(scenario=Scenario(n_hosts=hosts, n_tasks=tasks, load=load, split="test"))
        for seed in seeds:
            for name in heuristics:
                env.reset(seed=seed)  # same episode for every policy
                m = run_episode(env.sim, make_policy(name), seed=seed, clock=time.perf_counter).as_dict()
                rows.append({"policy": name, "load": load, "seed": seed, **m})
            for name, model in models.items():
                rows.append({"policy": name, "load": load, "seed": seed, **run_model(env, model, seed)})
        policies = len(heuristics) + len(models)
        print(f"load {load:g}: {len(seeds)} episodes x {policies} policies done", flush=True)
    return pool_training_seeds(pd.DataFrame(rows))


#: prefixes of rows named by their training run (``<prefix><config>_s<seed>``), pooled over seeds
RUN_PREFIXES = ("maskable_ppo:", "masked_dqn:", "td3:")


def pool_training_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """Add rows ``<kind>:<config>:pooled`` for runs named ``<kind>:<config>_s<seed>`` (one per seed)."""
    runs = df["policy"][df["policy"].str.startswith(RUN_PREFIXES) & ~df["policy"].str.endswith(":pooled")]
    config = runs.str.replace(r"_s\d+$", "", regex=True)
    pooled = [
        df.loc[config.index[config == c]].assign(policy=f"{c}:pooled")
        for c in config.unique()
        if runs[config == c].nunique() > 1  # one run: its own row says it all
    ]
    return pd.concat([df, *pooled], ignore_index=True) if pooled else df


def merge_episode_files(paths) -> pd.DataFrame:
    """The rows of several ``compare_episodes.csv`` files, checked to be of the same episodes.

    A heuristic is deterministic, so one that appears in several files must score the same on
    each (load, seed); if not, the files hold different episodes (e.g. ``Scenario.episode(s)``
    rather than ``PlacementEnv.reset(seed=s)``) and pairing their rows by seed would compare
    different task lists, so this raises ``ValueError`` naming the files. Repeated heuristic
    rows are then kept once (their timings differ; the first file's row is kept).
    """
    frames = []
    for path in paths:
        frame = pd.read_csv(path)
        frame["_file"] = str(path)
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    heuristic = df["policy"].isin([*HEURISTICS, *HORIZON_HEURISTICS])
    key = ["policy", "load", "seed"]
    scores = df[heuristic].groupby(key)["score"]
    spread = scores.max() - scores.min()
    if (spread > 1e-9).any():
        policy, load, seed = spread[spread > 1e-9].index[0]
        same = (df["policy"] == policy) & (df["load"] == load) & (df["seed"] == seed)
        files = sorted(df[heuristic & same]["_file"])
        raise ValueError(
            f"{policy} scores differently at load {load:g}, seed {seed} in {', '.join(files)}: "
            "the files hold different episodes"
        )
    repeated = heuristic & df.duplicated(key)
    return df[~repeated].drop(columns="_file").reset_index(drop=True)


def per_episode(values, seeds) -> np.ndarray:
    """``values`` averaged over the rows that share an episode seed, in seed order.

    A pooled row holds one row per (training run, episode seed), and the runs were scored on the
    *same* episodes: their rows are not independent samples, and a CI over all of them would be
    too narrow (session 13: load 0.8 of ``bchor:pooled`` on 40 episodes read 1.111 +- 0.011 that
    way, +- 0.015 per episode). Averaging over runs first leaves one value per episode, the unit
    the episodes were drawn in. A row that is not pooled has one value per seed: unchanged.
    The interval is then over episodes for *these* training runs; how much runs differ is in the
    per-seed rows (two runs are too few to put a between-run term in the interval).
    """
    return pd.Series(np.asarray(values, dtype=float)).groupby(np.asarray(seeds)).mean().to_numpy()


def summary(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (policy, load), group in df.groupby(["policy", "load"], sort=False):
        row = {"policy": policy, "load": load, "seeds": group["seed"].nunique()}
        for metric in METRICS:
            mean, half = mean_ci95(per_episode(group[metric], group["seed"]))
            row[metric], row[f"{metric}_ci95"] = mean, half
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| load | policy | score | acceptance | wait (s) | slowdown | fragmentation "
        "| p95 RTT (ms) | µs/decision | accepted work | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.sort_values(["load", "score"], ascending=[True, False]).iterrows():
        cells = [f"{r[m]:.3f} ± {r[m + '_ci95']:.3f}" for m in METRICS[:2]]
        cells += [f"{r[m]:.1f} ± {r[m + '_ci95']:.1f}" for m in METRICS[2:3]]
        cells += [f"{r[m]:.2f} ± {r[m + '_ci95']:.2f}" for m in METRICS[3:5]]
        cells += [f"{r[m]:.0f} ± {r[m + '_ci95']:.0f}" for m in METRICS[5:7]]
        cells += [f"{r[m]:.3f} ± {r[m + '_ci95']:.3f}" for m in METRICS[7:]]
        cells.append(str(int(r["seeds"])))
        lines.append(f"| {r['load']:g} | {r['policy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: heuristics that defer on purpose (admission control, waiting for a near host): reported apart
ADMISSION_HEURISTICS = ("admission_nearest_fit", "patient_nearest_fit", "stream_nearest_fit")
#: heuristics that place every task they can (the issue's baselines)
PLACEMENT_HEURISTICS = tuple(name for name in HEURISTICS if name not in ADMISSION_HEURISTICS)
#: row-name prefixes of learned policies and planners (compared against the targets)
LEARNED_PREFIXES = ("maskable_ppo", "masked_dqn", "rollout", "td3")
HIGH_LOAD = 0.8


def targets(table: pd.DataFrame, rl: str = "maskable_ppo") -> str:
    """Per load: the RL policy against the best placement heuristic and against admission control.

    Targets (from the issue): at load >= 0.8 the RL score is >= 1.10 x the best heuristic's;
    below, within 2 % of it (or better); decision latency < 1 ms.
    """
    lines = [
        "| load | RL score | best placement heuristic | RL / it | target | met | "
        + " | ".join(f"{name} | RL / it" for name in ADMISSION_HEURISTICS)
        + " | RL µs/decision |",
        "|---|---|---|---|---|---|" + "---|---|" * len(ADMISSION_HEURISTICS) + "---|",
    ]
    for load in sorted(table["load"].unique()):
        sub = table[table["load"] == load].set_index("policy")
        if rl not in sub.index:
            continue
        r = sub.loc[rl]
        heur = sub.loc[[p for p in PLACEMENT_HEURISTICS if p in sub.index]]
        if heur.empty:  # models only (--skip-heuristics): nothing to compare with
            continue
        best = heur["score"].idxmax()
        ratio = r["score"] / heur.loc[best, "score"]
        if load >= HIGH_LOAD:
            target, met = ">= 1.10", ratio >= 1.10
        else:
            target, met = ">= 0.98", ratio >= 0.98
        adm_cells = []
        for name in ADMISSION_HEURISTICS:
            adm = sub.loc[name] if name in sub.index else None
            adm_cells += (
                [f"{adm['score']:.3f} ± {adm['score_ci95']:.3f}", f"{r['score'] / adm['score']:.3f}"]
                if adm is not None
                else ["", ""]
            )
        lines.append(
            f"| {load:g} | {r['score']:.3f} ± {r['score_ci95']:.3f} | {best} {heur.loc[best, 'score']:.3f} "
            f"± {heur.loc[best, 'score_ci95']:.3f} | {ratio:.3f} | {target} | {'yes' if met else 'no'} | "
            + " | ".join(adm_cells)
            + f" | {r['decision_latency_us']:.0f} ± {r['decision_latency_us_ci95']:.0f} |"
        )
    return "\n".join(lines) + "\n"


#: the heuristic the ratio targets are stated against
TARGET_BASELINE = "nearest_fit"


def paired_ratios(df: pd.DataFrame, baseline: str = TARGET_BASELINE) -> pd.DataFrame:
    """Per learned row and load: mean and 95 % CI of ``score / baseline score`` paired per episode.

    Each episode of a learned policy is divided by the baseline's score on the same
    (load, episode seed); pooled rows pair every (training seed, episode seed) this way and
    average the ratios of one episode over the training seeds (:func:`per_episode`).
    Pairing removes the episode-to-episode variation both policies share, so this CI is
    the one to read a ratio target against. Empty if the baseline was not run. The targets
    (issue 5) are against ``nearest_fit``; against another baseline ``target`` is NaN.
    """
    base = df[df["policy"] == baseline].drop_duplicates(["load", "seed"]).set_index(["load", "seed"])["score"]
    learned = df[df["policy"].str.startswith(LEARNED_PREFIXES)]
    rows = []
    for (policy, load), group in learned.groupby(["policy", "load"], sort=False):
        keys = pd.MultiIndex.from_arrays([group["load"], group["seed"]])
        if base.empty or not keys.isin(base.index).all():
            continue
        ratio = per_episode(group["score"].to_numpy() / base.loc[keys].to_numpy(), group["seed"])
        mean, half = mean_ci95(ratio)
        target = (1.10 if load >= HIGH_LOAD else 0.98) if baseline == TARGET_BASELINE else float("nan")
        rows.append(
            {
                "policy": policy,
                "load": load,
                "baseline": baseline,
                "ratio": mean,
                "ratio_ci95": half,
                "target": target,
                "met_on_mean": mean >= target,
                "met_at_95": mean - half >= target,
                "episodes": len(ratio),
            }
        )
    return pd.DataFrame(rows)


def paired_markdown(paired: pd.DataFrame) -> str:
    """The paired ratios as markdown: one table per baseline (headed by it if there are several)."""
    baselines = list(dict.fromkeys(paired["baseline"]))
    parts = []
    for baseline in baselines:
        lines = [f"### score / {baseline}\n"] if len(baselines) > 1 else []
        lines += [
            f"| policy | load | score / {baseline}, paired per episode | target | met on the mean "
            "| met at 95 % | episodes |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = paired[paired["baseline"] == baseline].sort_values(["policy", "load"], kind="stable")
        for _, r in rows.iterrows():
            if pd.isna(r["target"]):
                target, met = "(none)", ["", ""]
            else:
                target, met = (
                    f">= {r['target']:.2f}",
                    ["yes" if r[k] else "no" for k in ("met_on_mean", "met_at_95")],
                )
            lines.append(
                f"| {r['policy']} | {r['load']:g} | {r['ratio']:.3f} ± {r['ratio_ci95']:.3f} "
                f"| {target} | {met[0]} | {met[1]} | {r['episodes']} |"
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def pooled_markdown(table: pd.DataFrame, paired: pd.DataFrame) -> str:
    """Per pooled row and load: each training seed's score, the pooled score, and the pooled
    paired ratios over every baseline in ``paired`` (mean ± 95 % CI). Empty without pooled rows."""
    parts = []
    for pooled in [p for p in dict.fromkeys(table["policy"]) if p.endswith(":pooled")]:
        config = pooled.removesuffix(":pooled")
        seeds = [p for p in dict.fromkeys(table["policy"]) if re.fullmatch(re.escape(config) + r"_s\d+", p)]
        baselines = list(dict.fromkeys(paired["baseline"])) if not paired.empty else []
        header = [
            *(s.split(":", 1)[1] for s in seeds),
            "pooled",
            *(f"pooled / {b}, paired" for b in baselines),
        ]
        lines = [f"### {pooled}\n", "| load | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
        for load in sorted(table["load"].unique()):
            sub = table[table["load"] == load].set_index("policy")
            if pooled not in sub.index:
                continue
            cells = [_score_cell(sub, name) for name in [*seeds, pooled]]
            for baseline in baselines:
                hit = paired[
                    (paired["policy"] == pooled) & (paired["load"] == load) & (paired["baseline"] == baseline)
                ]
                cells.append(
                    f"{hit.iloc[0]['ratio']:.3f} ± {hit.iloc[0]['ratio_ci95']:.3f}" if len(hit) else ""
                )
            lines.append(f"| {load:g} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _score_cell(sub: pd.DataFrame, policy: str) -> str:
    """``mean ± CI`` of a policy's score in one load's rows (empty if it was not run there)."""
    if policy not in sub.index:
        return ""
    return f"{sub.loc[policy, 'score']:.3f} ± {sub.loc[policy, 'score_ci95']:.3f}"


def plot(table: pd.DataFrame, path: Path) -> None:
    loads = sorted(table["load"].unique())
    names = dict.fromkeys(table["policy"])
    pooled = {p.removesuffix(":pooled") for p in names if p.endswith(":pooled")}
    # a run's own row only where no pooled row stands for its seeds
    policies = [
        p
        for p in names
        if not p.startswith(RUN_PREFIXES) or p.endswith(":pooled") or re.sub(r"_s\d+$", "", p) not in pooled
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("score", "acceptance_rate"), strict=True):
        for policy in policies:
            sub = table[table["policy"] == policy].set_index("load").reindex(loads)
            main = policy.startswith(LEARNED_PREFIXES) or policy.endswith("nearest_fit")
            style = "-o" if main else ":."
            ax.errorbar(loads, sub[metric], yerr=sub[f"{metric}_ci95"], fmt=style, capsize=3, label=policy)
        ax.set_xlabel("offered load")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("ITP on Alibaba openb (test split), mean and 95% CI over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loads", default="0.5,0.7,0.8,0.9,1.0", help="comma-separated load levels")
    parser.add_argument("--seeds", type=int, default=10, help="episode seeds 0..N-1")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=512)
    parser.add_argument(
        "--model", type=Path, action="append", help="a MaskablePPO .zip to compare as well (repeatable)"
    )
    parser.add_argument(
        "--dqn-model",
        type=Path,
        action="append",
        help="a masked DQN (novacron itp train --algo masked_dqn, experiments/itp_train_dqn.py; repeatable)",
    )
    parser.add_argument(
        "--td3-model",
        type=Path,
        action="append",
        help="a TD3 .zip (novacron itp train --algo td3, experiments/itp_train_td3.py; repeatable)",
    )
    parser.add_argument(
        "--paired-baselines",
        default=TARGET_BASELINE,
        help="comma-separated heuristics to pair learned rows with (paired.*, pooled.md)",
    )
    parser.add_argument(
        "--sb3-predict", action="store_true", help="time SB3's model.predict for PPO (not the fast path)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/itp"))
    parser.add_argument(
        "--from-episodes",
        type=Path,
        nargs="+",
        metavar="CSV",
        help="run nothing: rebuild the tables and plot from compare_episodes.csv files "
        "(e.g. of runs split by load to use several cores)",
    )
    parser.add_argument(
        "--skip-heuristics", action="store_true", help="models only (merge with --from-episodes later)"
    )
    parser.add_argument("--heuristics", help="comma-separated subset of the heuristics to run (default: all)")
    args = parser.parse_args(argv)
    loads = [float(x) for x in args.loads.split(",")]
    seeds = range(args.seeds)
    if args.from_episodes:
        df = merge_episode_files(args.from_episodes)
    else:
        heuristics = tuple(args.heuristics.split(",")) if args.heuristics else tuple(HEURISTICS)
        # the horizon heuristics (teachers that know the episode's length) only when named
        unknown = [name for name in heuristics if name not in HEURISTICS and name not in HORIZON_HEURISTICS]
        if unknown:
            known = ", ".join([*HEURISTICS, *HORIZON_HEURISTICS])
            parser.error(f"unknown heuristic(s) {unknown}; choose from {known}")
        heuristics = () if args.skip_heuristics else heuristics
        df = episodes(
            loads,
            seeds,
            args.hosts,
            args.tasks,
            args.model,
            args.dqn_model,
            args.sb3_predict,
            heuristics,
            args.td3_model,
        )
    table = summary(df)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "compare_episodes.csv", index=False)
    table.to_csv(args.out / "compare.csv", index=False)
    (args.out / "compare.md").write_text(markdown(table))
    plot(table, args.out / "compare.png")
    print(markdown(table))
    rl_rows = [p for p in dict.fromkeys(table["policy"]) if p.startswith(LEARNED_PREFIXES)]
    if rl_rows:
        text = "\n".join(f"### {name}\n\n{targets(table, name)}" for name in rl_rows)
        (args.out / "targets.md").write_text(text)
        print(text)
    paired = [paired_ratios(df, b) for b in args.paired_baselines.split(",")]
    paired = pd.concat([p for p in paired if not p.empty] or [pd.DataFrame()], ignore_index=True)
    if not paired.empty:
        paired.to_csv(args.out / "paired.csv", index=False)
        (args.out / "paired.md").write_text(paired_markdown(paired))
    pooled = pooled_markdown(table, paired)
    if pooled:
        (args.out / "pooled.md").write_text(pooled)
        print(pooled)
    return table


if __name__ == "__main__":
    main()
