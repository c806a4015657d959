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


ALLOCATORS = {"equal", "proportional", "edf", "robust_mpc"}
ALLOCATION_METRICS = {"misses", "weighted_misses", "goodput_over_capacity"}


def test_allocate_json_scores_every_allocator_in_the_env_and_over_amst(tmp_path, capsys):
    folder = trace_dir(tmp_path, "net", n_files=2, length=60)
    argv = ["allocate", "--traces", str(folder), "--seeds", "2", "--max-steps", "40", "--edf-margin", "1.2"]
    assert run(*argv, "--over-amst", "--rtt", "0.05", "--json") == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["episodes"] == 4 and len(out["files"]) == 2 and out["rtt_s"] == 0.05
    assert set(out["allocators"]) == ALLOCATORS | {"edf_margin"}
    for places in out["allocators"].values():
        assert set(places) == {"env", "amst"}
        assert set(places["env"]) == ALLOCATION_METRICS
        assert set(places["amst"]) == ALLOCATION_METRICS | {"misses_nearly_done"}
        assert all(
            m["ci95"] is not None and m["ci95"] >= 0 for metrics in places.values() for m in metrics.values()
        )
    assert "episode 4/4" in captured.err  # progress goes to stderr, the JSON alone to stdout


def test_allocate_loads_a_learned_allocator_and_names_a_missing_one(tmp_path, capsys):
    from pathlib import Path

    folder = trace_dir(tmp_path, "net", n_files=1, length=60)
    shipped = Path(__file__).resolve().parents[2] / "results/pba/models/rl_ppo_residual_s0"
    assert (
        run("allocate", "--traces", str(folder), "--max-steps", "30", "--model", str(shipped), "--json") == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out["allocators"]) == ALLOCATORS | {"rl_ppo_residual_s0"}
    assert out["allocators"]["edf"]["env"]["misses"]["ci95"] is None  # one episode: no interval
    missing = tmp_path / "nowhere"
    assert run("allocate", "--traces", str(folder), "--model", str(missing)) == 2
    assert "nowhere.zip" in capsys.readouterr().err
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    (tmp_path / "broken.json").write_text("{}")
    assert run("allocate", "--traces", str(folder), "--model", str(tmp_path / "broken")) == 2
    assert "broken: not a learned allocator" in capsys.readouterr().err
