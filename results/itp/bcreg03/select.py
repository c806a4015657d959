"""Select a bcreg03 checkpoint on val load 0.8 (see results/itp/README.md, "bcreg03").

    .venv/bin/python results/itp/bcreg03/select.py results/itp/runs/bcreg03_s0 [--write]

Rule (fixed after seeing only the step-1 validation): the checkpoint ``ckpt_<steps>.zip``
with the highest val score at load 0.8, among those whose val score at 0.5 is at least
min(0.98 x nearest_fit's val 0.5, the start checkpoint's val 0.5) - 0.003; ties go to the
earlier one. ``--write`` copies it to ``best.zip`` and writes ``selection.json``.
"""

import csv
import json
import shutil
import sys
from pathlib import Path

run = Path(sys.argv[1])
rows = list(csv.DictReader((run / "learning_curve.csv").open()))
nf05 = next(
    float(r["score"])
    for r in rows
    if r["split"] == "val" and r["policy"] == "nearest_fit" and float(r["load"]) == 0.5
)
val = {}
for r in rows:
    if r["split"] == "val" and r["policy"] == "ppo":
        val.setdefault(int(r["timesteps"]), {})[float(r["load"])] = float(r["score"])
cands = [(s, v) for s, v in sorted(val.items()) if (run / f"ckpt_{s}.zip").exists()]
floor = min(0.98 * nf05, cands[0][1][0.5]) - 0.003
for s, v in cands:
    print(s, " ".join(f"{k:g}:{x:.4f}" for k, x in v.items()), "ok0.5" if v[0.5] >= floor else "LOW0.5")
ok = [(s, v) for s, v in cands if v[0.5] >= floor]
step, v = max(ok, key=lambda sv: (sv[1][0.8], -sv[0]))
print("nearest_fit val 0.5:", nf05, "floor", floor, "-> selected", step, v)
if len(sys.argv) > 2 and sys.argv[2] == "--write":
    shutil.copyfile(run / f"ckpt_{step}.zip", run / "best.zip")
    rule = (
        "max val score at load 0.8 over ckpt_*.zip, subject to val 0.5 >= min(0.98 x nearest_fit val 0.5, "
        "start checkpoint val 0.5) - 0.003 (same episodes); best.zip = that checkpoint"
    )
    selection = {
        "rule": rule,
        "floor_0.5": floor,
        "nearest_fit_val_0.5": nf05,
        "selected_timesteps": step,
        "val": {str(k): x for k, x in v.items()},
        "start_checkpoint_val": {str(k): x for k, x in cands[0][1].items()},
    }
    (run / "selection.json").write_text(json.dumps(selection, indent=1))
