"""Re-measure the HDE cost model on this machine and retrain the learned codec selector.

Writes two files inside the package (both read by ``novacron.encoding``):

* ``novacron/encoding/calibration.json``: compress/decompress throughput and ratio per codec, level
  and content class (zero, text, random, mixed), plus the delta methods on re-sent pages; the
  simulator charges ``size / throughput`` CPU seconds from it (``CostModel.load()``);
* ``novacron/encoding/selector_model.json``: the learned selector (``enable_ml_model=True``),
  trained on measured samples against the new costs, with a held-out comparison printed.

Run it on an otherwise idle machine (the figures are best-of-N wall-clock rates, about a minute):

    .venv/bin/python benchmarks/calibrate_encoding.py
    .venv/bin/python benchmarks/calibrate_encoding.py --bytes 4194304 --repeats 5
    .venv/bin/python benchmarks/calibrate_encoding.py --output /tmp/cal.json --model-output /tmp/m.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from common import machine

from novacron.encoding import CostModel
from novacron.encoding.calibration import calibrate
from novacron.encoding.learned import LearnedSelector, measure_samples
from novacron.encoding.selector import RuleSelector

PACKAGE = Path(__file__).resolve().parents[1] / "novacron" / "encoding"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Redo the calibration whenever the machine, Python, zstandard, lz4 or isal changes, "
        "and commit both JSON files.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", type=Path, default=PACKAGE / "calibration.json", help="cost model JSON")
    parser.add_argument(
        "--model-output", type=Path, default=PACKAGE / "selector_model.json", help="learned selector JSON"
    )
    parser.add_argument("--bytes", type=int, default=1 << 20, help="buffer size per content class")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best is kept)")
    parser.add_argument(
        "--budget", type=float, default=1.0, help="seconds per figure before stopping repeats"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--skip-model", action="store_true", help="do not retrain the learned selector")
    return parser.parse_args(argv)


def summary(model: CostModel) -> pd.DataFrame:
    rows = [
        {
            "codec": codec,
            "level": level,
            "content": content,
            "compress_MB/s": round(cost.compress_bytes_per_s / 1e6, 1),
            "decompress_MB/s": round(cost.decompress_bytes_per_s / 1e6, 1),
            "ratio": round(cost.ratio, 4),
        }
        for (codec, level, content), cost in sorted(model.codecs.items())
        if content in ("text", "mixed")
    ]
    return pd.DataFrame(rows)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    print(f"calibrating on {machine()}", flush=True)
    started = time.perf_counter()
    model = calibrate(
        time.perf_counter,
        seed=args.seed,
        nbytes=args.bytes,
        repeats=args.repeats,
        budget=args.budget,
        machine=machine(),
        progress=lambda what: print(f"  measured {what}", flush=True),
    )
    model.save(args.output)
    print(summary(model).to_string(index=False))
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f} s")
    if args.skip_model:
        return
    train = measure_samples(model, seed=1, buffers=320)
    held_out = measure_samples(model, seed=2, buffers=80)
    learned = LearnedSelector.fit(train, model, seed=0)
    learned.meta.update({"train_samples": len(train.x), "train_seed": 1, "held_out_seed": 2})
    learned.save(args.model_output)
    picks = {
        "learned": learned.pick(held_out.x),
        "rule-based": held_out.picks(RuleSelector(model)),
        "always zstd-3": [held_out.index("zstd", 3)] * len(held_out.x),
        "always none": [held_out.index("none", 0)] * len(held_out.x),
    }
    table = pd.DataFrame(
        [
            {"selector": k, "mean time / oracle": round(held_out.mean_normalised_time(v), 4)}
            for k, v in picks.items()
        ]
    )
    print(table.to_string(index=False))
    print(f"wrote {args.model_output}")


if __name__ == "__main__":
    main(sys.argv[1:])
