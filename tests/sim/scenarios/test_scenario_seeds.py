"""A scenario over many seeds (``run_seeds``, ``novacron simulate --seeds``): one row of headline
figures per seed, each the run a single-seed command would make, in the seeds' order."""

import pandas as pd
import pytest

from novacron.cli import main as novacron
from novacron.sim.scenarios import load_scenario, run_scenario, run_seeds


def test_each_seeds_row_is_that_seeds_run_and_workers_do_not_change_the_table():
    scenario = load_scenario("sync").with_overrides(duration=35.0)
    table = run_seeds(scenario, [4, 2, 7], workers=2)
    assert table["seed"].tolist() == [4, 2, 7]
    for seed, trace_hash in zip(table["seed"], table["trace_hash"], strict=True):
        assert trace_hash == run_scenario(scenario.with_overrides(seed=seed)).trace_hash
    pd.testing.assert_frame_equal(run_seeds(scenario, [4, 2, 7], workers=1), table, check_exact=True)


def test_a_row_flattens_the_summary_tables():
    row = run_scenario(load_scenario("sync").with_overrides(duration=35.0)).row()
    assert row["sync.replicas"] == 5 and isinstance(row["sync.converged_at_end"], bool)
    assert row["latency[inter-region].count"] > 0  # one row per link class: labelled
    assert row["failures[dropped].value"] >= 0
    assert not any(key.startswith("faults") for key in row)  # a list of events, not figures


def test_the_command_line_reports_the_spread_over_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    code = novacron(
        ["simulate", "sync", "--seeds", "0:2", "--duration", "35s", "--workers", "1", "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "scenario sync: seeds 0..1, 2 runs" in printed and "sync.converged_at_end" in printed
    assert pd.read_csv(out / "seeds.csv")["seed"].tolist() == [0, 1]


def test_one_seed_or_many_not_both(capsys):
    with pytest.raises(SystemExit) as exit_:
        novacron(["simulate", "sync", "--seed", "1", "--seeds", "0:2"])
    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
