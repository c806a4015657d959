"""The migration section of scenarios: validated, run, reported (and in the default scenario)."""

import pytest

from novacron.sim.scenarios import load_scenario, run_scenario
from novacron.sim.scenarios.model import Scenario

BASE = {
    "name": "mig",
    "seed": 3,
    "duration": "20s",
    "topology": {"kind": "datacenter", "nodes": 3},
    "heartbeat": None,
}


def test_a_scenario_migration_runs_and_is_reported():
    scenario = Scenario.model_validate(
        {
            **BASE,
            "migration": [{"name": "m", "source": "n0", "destination": "n1", "at": "1s", "memory": "256MiB"}],
        }
    )
    result = run_scenario(scenario)
    table = result.table("migration")
    assert list(table["name"]) == ["m"] and table["outcome"].iloc[0] == "completed"
    assert table["downtime_s"].iloc[0] < 0.3 and not result.table("migration_rounds").empty


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "m", "source": "n0", "destination": "n0"}, "two different nodes"),
        (
            {"name": "m", "source": "n0", "destination": "n1", "memory": "1MiB", "working_set": "2MiB"},
            "working_set",
        ),
        ({"name": "m", "source": "n0", "destination": "n1", "settings": "vmware"}, "settings"),
    ],
)
def test_an_invalid_migration_entry_is_refused(entry, message):
    with pytest.raises(ValueError, match=message):
        Scenario.model_validate({**BASE, "migration": [entry]})


def test_the_default_scenario_includes_migrations():
    assert [m.name for m in load_scenario("default").migration] == ["vm-intra-dc", "vm-wan"]
