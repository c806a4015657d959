"""``novacron simulate``: run a scenario, print its tables and trace hash, save its results."""

import argparse
import json

import pytest

from novacron.cli import simulate_cmd
from novacron.sim.scenarios import builtin_names

TINY = """
name: tiny
seed: 3
duration: 3s
topology: {kind: datacenter, nodes: 4}
heartbeat: {interval: 200ms}
workload: [{name: images, link_class: intra-site, every: 1s, size: 64MiB}]
faults: [{kind: crash, node: n1, at: 1s, restart_after: 1s}]
"""


def simulate(*argv: str) -> int:
    """Parse like `novacron simulate ...` and run the handler, as the dispatcher does."""
    parser = argparse.ArgumentParser(prog="novacron")
    sub = parser.add_subparsers(dest="command", required=True)
    simulate_cmd.register(sub)
    args = parser.parse_args(["simulate", *argv])
    return args.func(args)


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_the_default_scenario_prints_its_tables_and_writes_results(tmp_path, capsys):
    out = tmp_path / "out"
    assert simulate("--duration", "2s", "--out", str(out)) == 0
    printed = capsys.readouterr()
    for heading in ("latency by link class", "goodput by link class", "Heartbeat", "Network counters"):
        assert heading in printed.out
    for link_class in ("intra-site", "intra-region", "inter-region"):
        assert link_class in printed.out
    assert "scenario default" in printed.out and "seed 1, 2 simulated s" in printed.out
    trace_hash = printed.out.strip().splitlines()[-1].removeprefix("trace hash: ")
    assert len(trace_hash) == 32
    assert f"files in {out}/" in printed.out
    assert {"latency.csv", "latency.parquet", "goodput.csv", "summary.txt", "scenario.yaml"} <= {
        p.name for p in out.iterdir()
    }
    assert printed.err == "", "no progress bar when stderr is not a terminal"


def test_results_go_to_results_scenario_seed_by_default_and_seed_overrides(
    tiny, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert simulate(str(tiny), "--seed", "4") == 0
    printed = capsys.readouterr().out
    assert "seed 4, 3 simulated s" in printed
    assert (tmp_path / "results" / "tiny-seed4" / "summary.txt").exists()


def test_the_same_seed_prints_the_same_trace_hash_and_another_seed_does_not(tiny, tmp_path, capsys):
    def hash_for(seed: str) -> str:
        simulate(str(tiny), "--seed", seed, "--out", str(tmp_path / seed), "--json")
        return json.loads(capsys.readouterr().out)["trace_hash"]

    assert hash_for("7") == hash_for("7") != hash_for("8")


def test_json_output_has_the_tables_the_hash_and_the_files(tiny, tmp_path, capsys):
    assert simulate(str(tiny), "--json", "--out", str(tmp_path / "o"), "--duration", "2") == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["scenario"], data["seed"], data["duration"]) == ("tiny", 3, 2.0)
    assert data["sections"]["latency"][0]["link_class"] == "intra-site"
    assert any(row["counter"] == "dropped_dead" and row["value"] > 0 for row in data["sections"]["failures"])
    assert all(path.startswith(str(tmp_path / "o")) for path in data["files"])


def test_a_bad_scenario_file_exits_2_naming_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("at: 1s", "at: soon"))
    assert simulate(str(bad), "--out", str(tmp_path / "never")) == 2
    printed = capsys.readouterr()
    assert f"{bad}: faults[0].at: not a duration" in printed.err
    assert printed.out == "" and not (tmp_path / "never").exists()


def test_an_unknown_scenario_name_exits_2_listing_the_builtins(capsys):
    assert simulate("nosuch") == 2
    err = capsys.readouterr().err
    assert "unknown scenario 'nosuch'" in err and all(name in err for name in builtin_names())


def test_list_shows_every_builtin_with_its_description(capsys):
    assert simulate("--list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == builtin_names()
    assert all(len(line.split()) > 3 for line in lines)


@pytest.mark.parametrize(
    "argv", [["--duration", "soon"], ["--duration", "0s"], ["--seed", "-1"], ["--seed", "x"]]
)
def test_bad_overrides_are_argument_errors(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        simulate(*argv)
    assert caught.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_the_top_level_dispatcher_runs_simulate(tmp_path, capsys):
    from novacron.cli import main

    assert main(["simulate", "--list"]) == 0
    assert "default" in capsys.readouterr().out
