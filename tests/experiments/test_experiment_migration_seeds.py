"""experiments/migration_seeds.py at toy size: the WAN cases over seeds, and their spread."""

import runpy
from pathlib import Path

from novacron.migration import MigrationSettings
from novacron.sim.migration import simulate_migration
from novacron.transport.dataplane import ContentMix

ROOT = Path(__file__).resolve().parents[2]


def test_the_seed_spread_covers_every_wan_case_and_seed_zero_is_the_sweeps_run(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "migration_seeds.py"))
    table = module["main"](["--seeds", "2", "--memories", "1", "--workers", "1", "--out", str(tmp_path)])
    assert len(table) == 2 * 3 * 2 and (table["seeds"] == 2).all()  # mixes x dirty rates x configs
    assert ((table["min"] <= table["mean"]) & (table["mean"] <= table["max"])).all()
    idle = table.set_index(["mix", "dirty_rate", "config"]).loc[("random", 0, "dwcp")]
    alone = simulate_migration(MigrationSettings.dwcp(), link="wan", memory=1 << 30, mix=ContentMix(0, 0, 1))
    assert idle["seed0"] == alone.total_time  # seed 0 is what migration_sweep.py reports
    assert len((tmp_path / "seeds.csv").read_text().splitlines()) == 1 + 2 * len(table)
