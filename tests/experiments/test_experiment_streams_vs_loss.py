"""The streams-vs-loss experiment runs end to end and shows what it is meant to show."""

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_sweep_writes_its_results_and_more_streams_help_cubic_under_loss(tmp_path):
    module = runpy.run_path(str(ROOT / "experiments" / "streams_vs_loss.py"))
    table = module["main"](
        ["--losses", "0.001", "--streams", "1", "8", "--size-mib", "32", "--out", str(tmp_path)]
    )
    assert {p.name for p in tmp_path.iterdir()} == {"goodput.csv", "goodput.parquet", "goodput.png"}
    cubic = table[table["congestion"] == "cubic"].set_index("streams")["goodput_gbps"]
    assert cubic[8] > 4 * cubic[1]
    bbr = table[table["congestion"] == "bbr"].set_index("streams")["goodput_gbps"]
    assert bbr[1] > cubic[1]
