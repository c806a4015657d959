"""Experiment: LSTM variants for the PBA target (issue 5 §1), with snapping chosen on training files only.

For each LSTM variant (loss, augmentation, ...) and each direction of ``pba_compare.py``
(``hsdpa->fcc``, ``fcc->hsdpa``, and the 80/20-by-file in-network rows), it

1. trains the LSTM on the training traces (or loads it from ``--cache`` if that exact variant, direction
   and seed were trained before),
2. chooses the snapping thresholds ``snap_tau`` (per step ahead, hard and soft) on the model's own
   validation files, which are files of the *training* network held out by ``fit`` for early stopping,
3. scores the raw and the snapped model next to the classical predictors on the test traces with the
   official protocol (``novacron.prediction.evaluate``: horizon k scores the k-th step alone).

No number of the test network is used to choose anything; the table reports every variant tried, so the
reader can see the spread. Writes ``snap_results.csv`` (one row per variant, direction, seed, horizon and
snapping mode) and ``snap_taus.json`` under ``--out``.

    nice -n 19 .venv/bin/python experiments/pba_snap.py --variants default welsch05 --seeds 0
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from novacron.prediction.evaluate import best_baseline, evaluate
from novacron.prediction.lstm import LSTMConfig, LSTMPredictor
from novacron.prediction.predictors import TARGET_BASELINES, classical_predictors
from novacron.prediction.traces import data_dir, load_traces, split_by_file

HORIZONS = (1, 5)
TARGET_IMPROVEMENT = 0.10
CROSS = ("hsdpa->fcc", "fcc->hsdpa")

#: LSTM variants: overrides of the default LSTMConfig
VARIANTS: dict[str, dict] = {
    "default": {},
    "welsch05": {"loss": "welsch", "welsch_scale": 0.05},
    "trimmed50": {"loss": "trimmed", "trim_fraction": 0.5},
    "aug125": {"augment_scales": [1, 2, 5]},
    "robust": {"robust_inputs": ["median3", "median5", "abs_change5"]},
    "robust_trimmed50": {"robust_inputs": ["median3", "median5", "abs_change5"], "loss": "trimmed"},
    "window5": {"window": 5},
    "window20": {"window": 20},
    "anchor_median3": {"anchor": "median3"},
    "anchor_median5": {"anchor": "median5"},
}


def directions(seed: int) -> dict[str, tuple[str, list[pd.DataFrame], list[pd.DataFrame]]]:
    """name -> (training-set key for the model cache, train traces, test traces), as in pba_compare."""
    hsdpa = load_traces([data_dir("norway_hsdpa")])
    fcc = load_traces([data_dir("fcc")])
    h_train, h_test = split_by_file(hsdpa, 0.2, np.random.default_rng(seed))
    f_train, f_test = split_by_file(fcc, 0.2, np.random.default_rng(seed))
    return {
        "hsdpa->fcc": ("hsdpa", hsdpa, fcc),
        "fcc->hsdpa": ("fcc", fcc, hsdpa),
        "hsdpa->hsdpa": ("hsdpa80", h_train, h_test),
        "fcc->fcc": ("fcc80", f_train, f_test),
    }


def trained(variant: str, key: str, seed: int, train: list[pd.DataFrame], cache: Path) -> LSTMPredictor:
    path = cache / f"{variant}_{key}_s{seed}.pt"
    if path.exists():
        model = LSTMPredictor.load(path)
        model.config.snap_tau = []
        return model
    start = time.time()
    model = LSTMPredictor(LSTMConfig(seed=seed, **VARIANTS[variant])).fit(train, progress=False)
    model.save(path)
    print(
        f"  trained {path.name}: {len(model.report.val_loss)} epochs, {time.time() - start:.0f} s", flush=True
    )
    return model


def run_one(variant: str, seed: int, cache: Path, only: set[str] | None) -> tuple[list[dict], list[dict]]:
    rows, taus = [], []
    for name, (key, train, test) in directions(seed).items():
        if only and name not in only:
            continue
        model = trained(variant, key, seed, train, cache)
        # the validation files fit() held out: same split, same seed
        _, val = split_by_file(train, model.config.val_fraction, np.random.default_rng(model.config.seed))
        models = {"raw": model}
        for mode in ("hard", "soft"):
            snapped = copy.deepcopy(model)
            snapped.config.snap_mode = mode
            val_scores = snapped.calibrate_snap(val)
            snapped.name = f"lstm_{mode}"
            models[mode] = snapped
            taus.append(
                {
                    "variant": variant,
                    "direction": name,
                    "seed": seed,
                    "mode": mode,
                    "snap_tau": snapped.config.snap_tau,
                    "val_median_ape_snapped": val_scores,
                    "val_files": [t.attrs.get("name", "?") for t in val],
                }
            )
        table = evaluate([*classical_predictors(), *models.values()], test, HORIZONS)
        for k in HORIZONS:
            at_k = table[table["horizon"] == k].set_index("predictor")
            best = best_baseline(table, k, TARGET_BASELINES)
            base = float(at_k.loc[best, "median_ape"])
            for mode, m in models.items():
                value = float(at_k.loc[m.name, "median_ape"])
                rows.append(
                    {
                        "variant": variant,
                        "snap": mode,
                        "direction": name,
                        "seed": seed,
                        "horizon": k,
                        "snap_tau": m.config.snap_tau[k - 1] if m.config.snap_tau else 0.0,
                        "lstm_median_ape": value,
                        "best_classical": best,
                        "best_classical_median_ape": base,
                        "improvement": 1 - value / base,
                        "meets_target": bool(value <= (1 - TARGET_IMPROVEMENT) * base),
                    }
                )
        print(
            pd.DataFrame([r for r in rows if r["direction"] == name and r["variant"] == variant])
            .drop(columns=["variant", "direction", "seed"])
            .to_string(index=False, float_format="{:.4f}".format),
            flush=True,
        )
    return rows, taus


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Per variant, snapping mode, direction and horizon: medians and improvements over the seeds."""
    grouped = results.groupby(["direction", "horizon", "variant", "snap"], sort=False)
    summary = grouped.agg(
        seeds=("seed", "nunique"),
        lstm_median_ape_mean=("lstm_median_ape", "mean"),
        best_classical_median_ape_mean=("best_classical_median_ape", "mean"),
        improvement_mean=("improvement", "mean"),
        improvement_min=("improvement", "min"),
        improvement_max=("improvement", "max"),
        seeds_meeting_target=("meets_target", "sum"),
    ).reset_index()
    order = {name: i for i, name in enumerate([*CROSS, "hsdpa->hsdpa", "fcc->fcc"])}
    keys = ["direction", "horizon", "variant", "snap"]
    return summary.sort_values(keys, key=lambda c: c.map(order) if c.name == "direction" else c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--directions", nargs="+", default=None, help="subset of directions (default all)")
    parser.add_argument("--out", type=Path, default=Path("results/pba/tuning"))
    parser.add_argument("--cache", type=Path, default=None, help="model cache (default OUT/models)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = args.cache or args.out / "models"
    cache.mkdir(parents=True, exist_ok=True)

    results_path, taus_path = args.out / "snap_results.csv", args.out / "snap_taus.json"
    old = pd.read_csv(results_path) if results_path.exists() else pd.DataFrame()
    old_taus = json.loads(taus_path.read_text()) if taus_path.exists() else []
    for variant in args.variants:
        for seed in args.seeds:
            print(f"== variant {variant}, seed {seed}", flush=True)
            rows, taus = run_one(variant, seed, cache, set(args.directions) if args.directions else None)
            new = pd.DataFrame(rows)
            keys = ["variant", "seed", "direction"]
            if not old.empty:
                done = new[keys].drop_duplicates()
                old = old.merge(done, on=keys, how="left", indicator=True)
                old = old[old["_merge"] == "left_only"].drop(columns="_merge")
            old = pd.concat([old, new], ignore_index=True)
            fresh = {(t["variant"], t["seed"], t["direction"]) for t in taus}
            old_taus = [t for t in old_taus if (t["variant"], t["seed"], t["direction"]) not in fresh] + taus
            old.to_csv(results_path, index=False)
            taus_path.write_text(json.dumps(old_taus, indent=1))
    summary = summarise(old)
    summary.to_csv(args.out / "snap_summary.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(summary.to_string(index=False, float_format="{:.4f}".format))
    cross = old[old["direction"].isin(CROSS)]
    print("\ncross-network improvement over the best classical (variant, snap, seed):")
    print(
        cross.pivot_table(
            index=["variant", "snap", "seed"], columns=["direction", "horizon"], values="improvement"
        )
    )


if __name__ == "__main__":
    main()
