"""The consensus section of a scenario: either protocol, checked like a campaign, and
member lists that cannot work are refused with the reason."""

import pytest

from novacron.sim.scenarios import ScenarioError, check_scenario, run_scenario, scenario_from_mapping


def scenario(protocol="raft", members=("n0", "n1", "n2"), faults=(), duration="8s"):
    return scenario_from_mapping(
        {
            "name": "kv",
            "seed": 3,
            "duration": duration,
            "topology": {"kind": "datacenter", "nodes": 6},
            "heartbeat": None,
            "consensus": {
                "protocol": protocol,
                "members": list(members),
                "clients": ["node:n5"],
                "think": "20ms",
            },
            "faults": list(faults),
        }
    )


def test_raft_in_a_datacenter_commits_and_checks_out():
    members = [f"n{i}" for i in range(3)]
    crash = {"kind": "crash", "node": members[0], "at": "3s"}
    result = run_scenario(scenario(members=members, faults=[crash]))
    [row] = result.table("consensus").to_dict("records")
    assert row["mode"] == "datacenter" and row["ok"] > 50 and row["linearizable_and_safe"]


def test_pbft_with_four_members():
    members = [f"n{i}" for i in range(4)]
    [row] = run_scenario(scenario("pbft", members)).table("consensus").to_dict("records")
    assert row["protocol"] == "pbft" and row["ok"] > 50 and row["linearizable_and_safe"]


def test_pbft_needs_three_f_plus_one_members():
    with pytest.raises(ScenarioError, match="3f \\+ 1"):
        check_scenario(scenario("pbft", [f"n{i}" for i in range(3)]))


def test_an_unknown_member_is_named():
    with pytest.raises(ScenarioError, match="consensus.members.*nosuch"):
        check_scenario(scenario(members=["nosuch"]))
