"""``experiments/itp_train.py --keep-checkpoints`` saves every validated model, at toy size."""

from __future__ import annotations

import csv
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_placement_train_keep_checkpoints_saves_one_model_per_validation(tmp_path):
    train = runpy.run_path(str(ROOT / "experiments" / "itp_train.py"))
    out = tmp_path / "run"
    argv = ["--hosts", "6", "--tasks", "40", "--timesteps", "64", "--n-steps", "32", "--batch-size", "16"]
    argv += ["--eval-every", "32", "--val-seeds", "1", "--val-loads", "0.9", "--loads", "0.9,0.9,1.0"]
    argv += ["--n-epochs", "1", "--hidden", "16", "--keep-checkpoints", "--out", str(out)]
    train["main"](argv)
    with (out / "learning_curve.csv").open() as fh:
        steps = {
            int(r["timesteps"]) for r in csv.DictReader(fh) if r["split"] == "val" and r["policy"] == "ppo"
        }
    saved = {int(p.stem.removeprefix("ckpt_")) for p in out.glob("ckpt_*.zip")}
    # every in-training validation has its model; the final one is last.zip
    assert saved and saved <= steps and (steps - saved) <= {max(steps)}
    assert min(saved) == min(steps) and (out / "last.zip").exists()
