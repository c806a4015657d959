"""``novacron pba train`` and ``novacron pba evaluate --json``, run in-process through argparse."""

import argparse
import json

import numpy as np

from novacron.cli import pba_cmd

PREDICTORS = {"last_value", "ewma", "harmonic_mean", "robust_mpc"}
METRICS = {"median_ape", "mean_ape", "mae", "rmse", "accuracy", "n", "n_ape"}


def run(*argv):
    parser = argparse.ArgumentParser()
    pba_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["pba", *argv])
    return args.func(args)


def trace_dir(tmp_path, name, n_files=5, length=40, seed=0):
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n_files):
        values = np.exp(rng.normal(0.5, 0.3, length))
        lines = [f"{t * 5.0}\t{v:.5f}" for t, v in enumerate(values)]
        (folder / f"trace_{i}.log").write_text("\n".join(lines) + "\n")
    return folder


def test_evaluate_json_prints_one_object_with_every_predictor(tmp_path, capsys):
    folder = trace_dir(tmp_path, "net")
    assert run("evaluate", "--traces", str(folder), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["predictors"]) == PREDICTORS and len(out["files"]) == 5
    for per_horizon in out["predictors"].values():
        assert set(per_horizon) == {"1", "5"}
        assert all(set(metrics) == METRICS for metrics in per_horizon.values())


def test_train_then_evaluate_with_the_model(tmp_path, capsys):
    model = tmp_path / "model.pt"
    train_argv = ["train", "--traces", str(trace_dir(tmp_path, "a")), "--out", str(model)]
    assert run(*train_argv, "--max-epochs", "3", "--hidden", "8", "--no-progress") == 0
    assert model.exists() and "wrote" in capsys.readouterr().out
    single = trace_dir(tmp_path, "b", n_files=2, seed=1) / "trace_0.log"
    assert run("evaluate", "--traces", str(single), "--model", str(model), "--horizon", "3", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["predictors"]) == PREDICTORS | {"lstm"}
    assert out["files"] == [str(single)] and out["horizons"] == [1, 3]


def test_a_malformed_trace_is_exit_2_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.log"
    bad.write_text("0 1\n1 oops\n")
    assert run("evaluate", "--traces", str(bad), "--json") == 2
    assert f"{bad}:2:" in capsys.readouterr().err


def test_train_offers_every_loss_the_lstm_has():
    from novacron.prediction.lstm import LOSSES

    assert pba_cmd.LOSS_CHOICES == LOSSES
