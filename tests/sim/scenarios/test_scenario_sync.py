"""The sync section of a scenario: ASS replicas write through the scenario's faults, the report
says how long each write took to reach every replica and whether the maps agree at the end, and
replica lists that cannot work are refused with the reason."""

import pytest

from novacron.sim.scenarios import (
    ScenarioError,
    check_scenario,
    load_scenario,
    run_scenario,
    scenario_from_mapping,
)


def scenario(replicas=("n0", "n1", "n2"), faults=(), duration="20s", **sync):
    return scenario_from_mapping(
        {
            "name": "sync",
            "seed": 2,
            "duration": duration,
            "topology": {"kind": "datacenter", "nodes": 6},
            "heartbeat": None,
            "sync": {"replicas": list(replicas), "every": "50ms", "stop": "12s", **sync},
            "faults": list(faults),
        }
    )


def test_replicas_in_a_datacenter_replicate_every_write_within_a_round_trip_or_two():
    [row] = run_scenario(scenario()).table("sync").to_dict("records")
    assert row["mode"] == "datacenter" and row["writes"] > 150
    assert row["replicated"] == row["writes"] and row["converged_at_end"]
    assert row["max_s"] < 0.01  # pushed to every peer at once, 200 µs apart


def test_a_partition_delays_replication_until_it_heals_and_the_maps_converge():
    cut = {"kind": "partition", "side_a": "node:n0", "at": "2s", "duration": "4s"}
    result = run_scenario(scenario(faults=[cut]))
    [row] = result.table("sync").to_dict("records")
    assert row["replicated"] == row["writes"] and row["converged_at_end"]
    writes = result.table("sync_writes")
    during = writes[(writes["time_s"] > 2.5) & (writes["time_s"] < 5.0)]
    assert (during["delay_s"] > 0.9).any()  # waited for the heal at 6 s
    assert row["max_s"] < 4.0 + 2.0  # and was repaired within an anti-entropy period or two of it
    assert result.section("sync").plot(result) is not None  # the delay-over-time figure


def test_the_built_in_sync_scenario_converges_after_its_faults():
    result = run_scenario(load_scenario("sync"))
    [row] = result.table("sync").to_dict("records")
    assert row["mode"] == "internet" and row["replicated"] == row["writes"] and row["converged_at_end"]
    assert row["most_siblings"] >= 2  # blind writes in different regions met


def test_one_replica_is_refused():
    with pytest.raises(ScenarioError, match="sync.replicas.*>= 2 replicas"):
        check_scenario(scenario(replicas=["n0"]))


def test_an_unknown_replica_is_named():
    with pytest.raises(ScenarioError, match="sync.replicas.*nosuch"):
        check_scenario(scenario(replicas=["n0", "nosuch"]))


def test_bad_settings_are_named():
    with pytest.raises(ScenarioError, match="read_first"):
        scenario(read_first=1.5)
