"""Scenarios load from YAML (built-in by name or a file by path), and bad ones say which field is wrong."""

from pathlib import Path
from typing import get_args

import pytest

from novacron.sim.network.congestion import ALGORITHMS
from novacron.sim.scenarios import (
    LINK_CLASSES,
    Scenario,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_bandwidth,
    parse_size,
    scenario_from_yaml,
    scenario_to_yaml,
)
from novacron.sim.scenarios.model import Congestion

MINIMAL = """
name: tiny
seed: 3
duration: 5s
topology: {kind: datacenter, nodes: 4}
"""


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        scenario_from_yaml(text, source="bad.yaml")
    return str(caught.value)


# --- built-ins ---------------------------------------------------------------------------------


def test_the_builtins_include_default_datacenter_and_wan():
    assert {"default", "datacenter", "wan"} <= set(builtin_names())


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_loads_under_its_own_name(name):
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.description, "built-ins say what they are for (novacron simulate --list shows it)"
    assert 0 < scenario.duration <= 60, "built-ins run in seconds of wall-clock time"


def test_the_default_scenario_is_hybrid_with_every_link_class_loaded_and_faults():
    scenario = load_scenario("default")
    assert scenario.topology.kind == "hybrid"
    assert len(scenario.topology.regions) >= 3 and scenario.topology.datacenters_per_region >= 2
    assert scenario.heartbeat is not None
    assert {w.link_class for w in scenario.workload} >= set(LINK_CLASSES)
    kinds = {f.kind for f in scenario.faults}
    assert {"partition", "crash"} <= kinds
    crash = next(f for f in scenario.faults if f.kind == "crash")
    assert crash.restart_after is not None
    assert all(max(w.size_range) <= 512 * 2**20 for w in scenario.workload), "VirtualPayloads stay cheap"


def test_an_unknown_name_is_an_error_listing_the_builtins():
    with pytest.raises(ScenarioError) as caught:
        load_scenario("nonexistent")
    message = str(caught.value)
    assert "unknown scenario 'nonexistent'" in message
    for name in builtin_names():
        assert name in message


def test_a_yaml_file_loads_by_path_with_human_units(tmp_path):
    path = write(
        tmp_path,
        MINIMAL
        + """
heartbeat: {interval: 200ms}
workload:
  - {name: images, link_class: intra-site, every: 1.5s, size: [64MiB, 1GiB], streams: 4}
faults:
  - {kind: crash, node: n1, at: 1m, restart_after: 500ms}
""",
    )
    scenario = load_scenario(str(path))
    assert (scenario.name, scenario.seed, scenario.duration) == ("tiny", 3, 5.0)
    assert scenario.heartbeat.interval == 0.2
    work = scenario.workload[0]
    assert work.every == 1.5 and work.size_range == (64 * 2**20, 2**30) and work.streams == (4,)
    assert (scenario.faults[0].at, scenario.faults[0].restart_after) == (60.0, 0.5)


def test_a_file_without_a_name_is_named_after_the_file(tmp_path):
    path = write(tmp_path, "topology: {kind: datacenter, nodes: 2}\n", name="my-run.yaml")
    assert load_scenario(path).name == "my-run"


def test_dumped_yaml_loads_back_to_an_equal_scenario():
    scenario = load_scenario("default")
    text = scenario_to_yaml(scenario)
    assert "40s" in text and "512MiB" in text and "10Gbit" in text  # human units, not raw numbers
    assert scenario_from_yaml(text) == scenario


def test_overrides_replace_seed_and_duration_and_are_validated():
    scenario = load_scenario("default").with_overrides(seed=9, duration=12.5)
    assert (scenario.seed, scenario.duration) == (9, 12.5)
    with pytest.raises(ValueError):
        scenario.with_overrides(duration=0)


# --- errors name the field -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("duration: soon", "bad.yaml: duration: not a duration"),
        ("seed: -1", "seed: "),
        ("durration: 5s", "unknown field 'durration' (did you mean 'duration'?"),
        ("topology: {kind: mesh}", "topology.kind: must be one of datacenter, wan, hybrid (got 'mesh')"),
        ("topology: {kind: hybrid, regions: [Mars]}", "topology.regions: unknown region(s) ['Mars']"),
        ("topology: {kind: datacenter, nodes: 0}", "topology.nodes: "),
        ("heartbeat: {interval: 0s}", "heartbeat.interval: must be a positive duration"),
        ("workload: [{name: w, size: lots}]", "workload[0].size[0]: not a size"),
        ("workload: [{name: w, congestion: vegas}]", "workload[0].congestion[0]: "),
        ("workload: [{name: w, size: [2GiB, 1GiB]}]", "workload[0].size: a size range must be [min, max]"),
        ("faults: [{kind: crush, node: n1, at: 1s}]", "faults[0].kind: must be one of partition, crash"),
        ("faults: [{kind: crash, at: 1s}]", "faults[0].node: required field is missing"),
        ("faults: [{kind: partition, side_a: n0, at: 1s, duration: -2s}]", "faults[0].duration: "),
        ("faults: [{kind: burst, at: 1s, loss: 1.5}]", "faults[0].loss: "),
        ("faults: [{kind: burst, at: 1s}]", "faults[0]: a burst needs loss, duplicate or reorder > 0"),
    ],
)
def test_a_bad_field_is_reported_with_its_path(snippet, expected):
    base = "name: t\ntopology: {kind: datacenter, nodes: 4}\n"
    # a snippet that sets topology replaces the base one
    text = f"name: t\n{snippet}\n" if snippet.startswith("topology") else base + snippet + "\n"
    assert expected in error_for(text)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("{kind: crash, node: n99, at: 1s}", "faults[0].node: unknown node 'n99'"),
        ("{kind: partition, side_a: 'region:Mars', at: 1s}", "faults[0].side_a: unknown region 'Mars'"),
        ("{kind: partition, side_a: 'site:dc9', at: 1s}", "faults[0].side_a: unknown site 'dc9'"),
        ("{kind: partition, side_a: all, at: 1s}", "faults[0].side_a: selects every node"),
        ("{kind: partition, side_a: [n0, n1], side_b: n1, at: 1s}", "faults[0].side_b: overlaps side_a"),
        ("{kind: degrade, sites: [dc1, dc2], at: 1s}", "faults[0].sites: unknown site(s) ['dc2']"),
        ("{kind: skew, node: 'rack:1', at: 1s}", "faults[0].node: unknown node 'rack:1'"),
    ],
)
def test_names_that_do_not_exist_in_the_topology_are_reported_at_load_time(fault, expected):
    assert expected in error_for(f"name: t\ntopology: {{kind: datacenter, nodes: 4}}\nfaults: [{fault}]\n")


def test_a_workload_the_topology_cannot_carry_is_reported():
    text = MINIMAL + "workload: [{name: far, link_class: inter-region}]\n"
    assert "workload[0].link_class: no pair of nodes in this topology is inter-region" in error_for(text)


def test_every_problem_is_reported_at_once_one_line_each():
    text = "name: t\nseed: x\nduration: later\n"
    problems = error_for(text).splitlines()
    assert len(problems) == 2
    assert problems[0].startswith("bad.yaml: seed: ") and problems[1].startswith("bad.yaml: duration: ")


def test_yaml_syntax_errors_and_duplicate_keys_name_the_line(tmp_path):
    assert "bad.yaml:2:8: invalid YAML: mapping values are not allowed" in error_for("name: t\nseed: 1: 2\n")
    assert "that starts on line 2" in error_for("name: t\nseed: [1\n")
    assert "duplicate key 'seed'" in error_for("name: t\nseed: 1\nseed: 2\n")
    assert "a scenario must be a mapping" in error_for("- just\n- a list\n")


def test_an_unreadable_path_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


# --- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [(1024, 1024), ("64MiB", 64 * 2**20), ("1.5GiB", 3 * 2**29), ("500MB", 500_000_000), ("7 B", 7)],
)
def test_sizes_accept_binary_and_decimal_units(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("text", "bps"),
    [("10Gbit", 1e10), ("100Mbps", 1e8), ("1Gbit/s", 1e9), (2.5e9, 2.5e9), ("25 Gbit", 2.5e10)],
)
def test_bandwidths_accept_bit_units(text, bps):
    assert parse_bandwidth(text) == bps


@pytest.mark.parametrize("text", ["10GB", "fast", "-1Gbit", "0"])
def test_bandwidths_in_bytes_or_nonsense_are_refused(text):
    with pytest.raises(ValueError):
        parse_bandwidth(text)


def test_the_congestion_controls_offered_are_exactly_the_simulators():
    assert set(get_args(Congestion)) == set(ALGORITHMS)


def test_scenario_defaults_are_a_valid_runnable_scenario():
    assert Scenario(name="x").topology.kind == "hybrid"
