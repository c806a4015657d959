"""``novacron itp evaluate`` / ``train``, run in-process through the command's own parser."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from novacron.cli import itp_cmd

SMALL = ["--hosts", "6", "--tasks", "60", "--load", "0.9"]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    itp_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_placement_cli_evaluate_prints_one_json_object(capsys):
    assert (
        run(["itp", "evaluate", "--policy", "best_fit", "--episodes", "2", "--seed", "3", "--json", *SMALL])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "best_fit" and result["seeds"] == [3, 4]
    for key in itp_cmd.METRICS:
        assert math.isfinite(result[key]) and math.isfinite(result[f"{key}_ci95"])
    assert 0 < result["acceptance_rate"] <= 1
    assert 0 < result["decision_latency_us"] < 1000  # well under 1 ms per placement
    assert result["defers"] == 0


def test_placement_cli_evaluate_can_add_the_score_bound(capsys):
    argv = ["itp", "evaluate", "--policy", "nearest_fit", "--episodes", "2", "--bound", "--json", *SMALL]
    assert run(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["score"] <= result["score_bound"] <= 1.0 and math.isfinite(result["score_bound_ci95"])
    assert run(["itp", "evaluate", "--policy", "nearest_fit", "--episodes", "1", "--bound", *SMALL]) == 0
    assert "score_bound" in capsys.readouterr().out  # the table too


def test_placement_cli_evaluate_pairs_the_score_with_heuristics_on_the_same_episodes(capsys):
    def evaluate(policy: str, *extra: str) -> dict:
        assert run(["itp", "evaluate", "--policy", policy, "--json", *extra, *SMALL]) == 0
        return json.loads(capsys.readouterr().out)

    itself = evaluate("nearest_fit", "--paired-with", "nearest_fit", "--episodes", "2")
    assert itself["score_over_nearest_fit"] == 1.0 and itself["score_over_nearest_fit_ci95"] == 0.0
    # one episode: the ratio is the two policies' scores on that episode, run separately
    one = ["--episodes", "1", "--seed", "3"]
    paired = evaluate("fgd", "--paired-with", "nearest_fit,fgd", *one)
    assert paired["score_over_fgd"] == 1.0
    ratio = evaluate("fgd", *one)["score"] / evaluate("nearest_fit", *one)["score"]
    assert paired["score_over_nearest_fit"] == pytest.approx(ratio) and ratio != pytest.approx(1.0)
    assert run(["itp", "evaluate", "--policy", "fgd", "--paired-with", "nearest_fit", *one, *SMALL]) == 0
    assert "score_over_nearest_fit" in capsys.readouterr().out  # the table too
    assert run(["itp", "evaluate", "--policy", "fgd", "--paired-with", "magic", *SMALL]) == 2
    assert "--paired-with: unknown heuristic(s) magic" in capsys.readouterr().err


def test_placement_cli_rejects_bad_policy_and_missing_model(capsys):
    assert run(["itp", "evaluate", "--policy", "magic", *SMALL]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert run(["itp", "evaluate", "--policy", "maskable_ppo", *SMALL]) == 2
    assert "--model" in capsys.readouterr().err


def test_placement_cli_bad_csv_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "nodes.csv"
    bad.write_text("sn,cpu_milli\n")
    assert run(["itp", "evaluate", "--policy", "first_fit", "--nodes", str(bad), *SMALL]) == 2
    assert "nodes.csv" in capsys.readouterr().err


@pytest.mark.timeout(120)
def test_placement_cli_tiny_train_then_evaluate_model(tmp_path, capsys):
    out = tmp_path / "ppo.zip"
    argv = ["itp", "train", "--timesteps", "128", "--arch", "host_scoring", "--out", str(out), "--quiet"]
    assert run([*argv, *SMALL]) == 0
    assert out.is_file() and (tmp_path / "ppo" / "progress.csv").is_file()
    capsys.readouterr()
    argv = ["itp", "evaluate", "--policy", "maskable_ppo", "--model", str(out), "--episodes", "1", "--json"]
    assert run([*argv, *SMALL]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "maskable_ppo" and 0 <= result["acceptance_rate"] <= 1
