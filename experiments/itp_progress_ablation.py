"""Ablation: how much of a learned placement policy's score comes from knowing the episode's length?

The reported learned policy (``bchor``, the host-scoring network imitating ``horizon_nearest_fit``)
sees ``progress`` (the share of the episode's tasks decided) in its observation, and its teacher
admits big tasks late in the episode, when what they hold past the last arrival costs nothing in
the score. An endless stream of tasks has no such end. This script scores the same models on the
same test episodes with ``progress`` replaced by a constant: 0 ("always early": the closest an
endless stream comes) and 0.3 (mid-episode, before the teacher's tail opens), beside the models as
trained, each paired per episode with ``nearest_fit`` (the ratio the issue 5 targets are read
against). The two models are averaged per episode before the 95 % CI, as in ``itp_compare.py``.

Writes ``progress_ablation.csv`` (per model, episode and setting) and ``progress_ablation.md`` under
``--out``.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python experiments/itp_progress_ablation.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novacron.placement.heuristics import make_policy, run_episode  # noqa: E402
from novacron.placement.metrics import mean_ci95, summarise  # noqa: E402
from novacron.placement.rl import FastMaskedPolicy, load_model  # noqa: E402
from novacron.placement.scenario import Scenario  # noqa: E402
from novacron.sim.envs.placement import HOST_FEATURES, TASK_FEATURES, PlacementEnv  # noqa: E402

MODELS = ("results/itp/runs/bchor_s0/best.zip", "results/itp/runs/bchor_s1/best.zip")
#: what ``progress`` is replaced by (None: the observation as the environment gives it)
SETTINGS = (None, 0.0, 0.3)


def score(env: PlacementEnv, seed: int, model=None, progress: float | None = None) -> float:
    """One test episode's score: ``nearest_fit`` if no model, else the model, with ``progress`` fixed."""
    obs, _ = env.reset(seed=seed)
    if model is None:
        return run_episode(env.sim, make_policy("nearest_fit"), seed=seed).score
    index = env.max_hosts * len(HOST_FEATURES) + TASK_FEATURES.index("progress")
    done = False
    while not done:
        if progress is not None:
            obs = obs.copy()
            obs[index] = progress
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
        obs, _, done, _, _ = env.step(int(action))
    return summarise(env.sim).score


def run(loads: list[float], seeds: int, models: list[Path]) -> pd.DataFrame:
    from tqdm.auto import tqdm

    policies = [FastMaskedPolicy(load_model("maskable_ppo", path)) for path in models]
    rows = []
    cases = [(load, seed) for load in loads for seed in range(seeds)]
    for load, seed in tqdm(cases, desc="episodes", unit="episode"):
        env = PlacementEnv(scenario=Scenario(n_hosts=16, n_tasks=512, load=load, split="test"))
        base = score(env, seed)
        for path, policy in zip(models, policies, strict=True):
            for progress in SETTINGS:
                value = score(env, seed, policy, progress)
                rows.append(
                    {
                        "load": load,
                        "seed": seed,
                        "model": path.parent.name,
                        "progress": "as observed" if progress is None else f"fixed {progress:g}",
                        "score": value,
                        "nearest_fit": base,
                        "ratio": value / base,
                    }
                )
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (load, progress), group in df.groupby(["load", "progress"], sort=False):
        per_episode = group.groupby("seed")["ratio"].mean().to_numpy()  # the models, averaged
        mean, half = mean_ci95(per_episode)
        rows.append(
            {
                "load": load,
                "progress": progress,
                "ratio": mean,
                "ratio_ci95": half,
                "episodes": len(per_episode),
            }
        )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| load | progress | score / nearest_fit, paired (models averaged per episode) | episodes |",
        "|---|---|---|---|",
    ]
    for r in summary.itertuples(index=False):
        lines.append(f"| {r.load:g} | {r.progress} | {r.ratio:.3f} ± {r.ratio_ci95:.3f} | {r.episodes} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0.5,0.8", help="comma-separated load levels (0.5,0.8)")
    parser.add_argument("--seeds", type=int, default=10, help="test episode seeds 0..N-1 (10)")
    parser.add_argument("--model", type=Path, action="append", help="models (default: the two bchor runs)")
    parser.add_argument("--out", type=Path, default=Path("results/itp/progress_ablation"))
    args = parser.parse_args(argv)
    models = args.model or [ROOT / path for path in MODELS]
    df = run([float(x) for x in args.loads.split(",")], args.seeds, models)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "progress_ablation.csv", index=False)
    summary = table(df)
    text = markdown(summary)
    (args.out / "progress_ablation.md").write_text(text)
    print(text)
    return summary


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
