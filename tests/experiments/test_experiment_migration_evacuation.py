"""The evacuation experiment runs end to end and shows what it is meant to show."""

import runpy
from pathlib import Path

import pytest

from novacron.migration import MigrationSettings
from novacron.sim.migration import simulate_evacuation

ROOT = Path(__file__).resolve().parents[2]


def test_the_sweep_writes_its_results_and_one_core_slows_an_evacuation_with_compression(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "migration_evacuation.py"))
    table = module["main"](["--links", "wan", "--vms", "1", "4", "--cores", "1", "0", "--out", str(tmp_path)])
    assert {p.name for p in tmp_path.iterdir()} == {"evacuation.csv", "evacuation.md", "evacuation.png"}
    assert "unlimited" in (tmp_path / "evacuation.md").read_text()
    dwcp = table[table["config"] == "dwcp"].set_index(["vms", "cores"])["evacuation_s"]
    assert dwcp[(1, 1)] == dwcp[(1, 0)]  # one migration encodes one batch at a time
    assert dwcp[(4, 1)] > 1.3 * dwcp[(4, 0)]  # four compete for the one core
    qemu = table[table["config"] == "qemu-uncapped"].set_index(["vms", "cores"])["evacuation_s"]
    assert qemu[(4, 1)] == pytest.approx(qemu[(4, 0)], rel=1e-3)  # no encoding, no CPU to wait for


def test_an_evacuation_needs_at_least_one_vm():
    with pytest.raises(ValueError, match="vms must be >= 1"):
        simulate_evacuation(MigrationSettings.dwcp(), vms=0, cores=None)
