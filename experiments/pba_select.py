"""Pick one LSTM variant per direction, seed and horizon on the training network's validation files.

``pba_snap.py`` reports every variant it tried on the test traces. A fair headline number must not pick
the variant by its test score, so this script picks it the way a practitioner could: for each direction,
seed and horizon, the (variant, snapping mode) with the lowest median APE on the *validation files of the
training data* (the files ``fit`` held out; same split for every variant of a seed), scored with the
official protocol (``novacron.prediction.evaluate``). It then looks up that model's test score in
``snap_results.csv``. Reads the model cache and ``snap_taus.json`` written by ``pba_snap.py``; writes
``selected.csv`` under ``--out``.

    nice -n 19 .venv/bin/python experiments/pba_select.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from novacron.prediction.evaluate import evaluate
from novacron.prediction.lstm import LSTMPredictor
from novacron.prediction.traces import split_by_file

sys.path.insert(0, str(Path(__file__).parent))
from pba_snap import HORIZONS, TARGET_IMPROVEMENT, directions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/pba/tuning"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = pd.read_csv(args.out / "snap_results.csv")
    taus = json.loads((args.out / "snap_taus.json").read_text())
    tau_of = {(t["variant"], t["direction"], t["seed"], t["mode"]): t["snap_tau"] for t in taus}
    rows = []
    for seed in sorted(results["seed"].unique()):
        for name, (key, train, _) in directions(int(seed)).items():
            tried = results[(results["seed"] == seed) & (results["direction"] == name)]
            if tried.empty:
                continue
            val_scores = []
            for variant in tried["variant"].unique():
                model = LSTMPredictor.load(args.out / "models" / f"{variant}_{key}_s{seed}.pt")
                _, val = split_by_file(
                    train, model.config.val_fraction, np.random.default_rng(model.config.seed)
                )
                for mode in ("raw", "hard", "soft"):
                    model.config.snap_tau = [] if mode == "raw" else tau_of[(variant, name, int(seed), mode)]
                    model.config.snap_mode = "hard" if mode == "raw" else mode
                    table = evaluate([model], val, HORIZONS)
                    for row in table.itertuples(index=False):
                        val_scores.append((int(row.horizon), float(row.median_ape), variant, mode))
            for k in HORIZONS:
                _, val_ape, variant, mode = min(s for s in val_scores if s[0] == k)
                test = tried[
                    (tried["variant"] == variant) & (tried["snap"] == mode) & (tried["horizon"] == k)
                ]
                test = test.iloc[0]
                rows.append(
                    {
                        "direction": name,
                        "seed": int(seed),
                        "horizon": k,
                        "selected_variant": variant,
                        "selected_snap": mode,
                        "val_median_ape": val_ape,
                        "lstm_median_ape": test["lstm_median_ape"],
                        "best_classical": test["best_classical"],
                        "best_classical_median_ape": test["best_classical_median_ape"],
                        "improvement": test["improvement"],
                        "meets_target": bool(
                            test["lstm_median_ape"]
                            <= (1 - TARGET_IMPROVEMENT) * test["best_classical_median_ape"]
                        ),
                    }
                )
    selected = pd.DataFrame(rows)
    selected.to_csv(args.out / "selected.csv", index=False)
    with pd.option_context("display.width", 200):
        print(selected.to_string(index=False, float_format="{:.4f}".format))


if __name__ == "__main__":
    main()
