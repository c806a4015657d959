"""``novacron pba``: bandwidth prediction on throughput traces (train an LSTM, score predictors).

* ``novacron pba train --traces DIR... --out MODEL`` trains the LSTM on every trace file given (files
  or directories), holding out a share of the *files* for early stopping, and writes MODEL (torch
  state dict + JSON config in one file).
* ``novacron pba evaluate --traces DIR... [--model MODEL] [--horizon K] [--json]`` scores the
  classical predictors (and the LSTM when ``--model`` is given) on exactly the files given, at
  horizon 1 and horizon K (the K-th step ahead alone). ``--json`` prints one JSON object; otherwise
  a table. Exit status 2 for bad arguments or unreadable traces.
* ``novacron pba allocate --traces DIR... [--model PATH...] [--edf-margin M] [--seeds N]
  [--over-amst [--rtt S] [--true-forecast]] [--json]`` scores the bandwidth allocators (the four
  baselines, EDF with a margin, learned policies saved by ``experiments/pba_allocation.py``) on the
  allocation environment's episodes of exactly the files given (``--seeds`` arrival seeds per file),
  and with ``--over-amst`` on the same episodes sent over AMST in the simulator
  (:mod:`novacron.sim.allocation`): deadline misses, priority-weighted misses, goodput over capacity,
  mean and 95 % CI over episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


#: the LSTM's training losses, as ``novacron.prediction.lstm.LOSSES`` (a test keeps them equal;
#: importing that module here would load torch for every ``--help``)
LOSS_CHOICES = ("l1_log", "ape", "welsch", "trimmed")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "pba",
        help="bandwidth prediction: train the LSTM, score predictors on traces",
        description="Predict the next samples of throughput traces with classical predictors (last value, "
        "EWMA, harmonic mean, RobustMPC) and an LSTM, and measure their errors.",
    )
    actions = parser.add_subparsers(dest="pba_command", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train the LSTM on trace files and save it")
    _trace_arguments(train)
    train.add_argument("--out", type=Path, required=True, metavar="MODEL", help="model file to write")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--window", type=int, default=10, help="samples of history per forecast (default 10)")
    train.add_argument("--horizon", type=int, default=5, help="steps forecast at once (default 5)")
    train.add_argument("--hidden", type=int, default=32, help="LSTM hidden units (default 32)")
    train.add_argument("--max-epochs", type=int, default=80)
    train.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    train.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of files held out (default 0.2)"
    )
    train.add_argument("--loss", choices=LOSS_CHOICES, default="l1_log", help="training loss (l1_log)")
    progress = train.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None)
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    train.set_defaults(func=run_train)

    evaluate = actions.add_parser("evaluate", help="score predictors on trace files")
    _trace_arguments(evaluate)
    evaluate.add_argument("--model", type=Path, metavar="MODEL", help="also score this trained LSTM")
    evaluate.add_argument("--horizon", type=int, default=5, metavar="K", help="second horizon (default 5)")
    evaluate.add_argument(
        "--min-history", type=int, default=None, help="samples before the first forecast (default 10)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(func=run_evaluate)

    allocate = actions.add_parser("allocate", help="score bandwidth allocators on trace files")
    _trace_arguments(allocate)
    allocate.add_argument(
        "--model",
        nargs="+",
        type=Path,
        default=[],
        metavar="PATH",
        help="learned allocators (PATH.zip + PATH.json, as results/pba/models/rl_ppo_residual_s0)",
    )
    allocate.add_argument("--edf-margin", type=float, help="also EDF asking this many times its share")
    allocate.add_argument("--seeds", type=int, default=1, help="arrival seeds per file (default 1)")
    allocate.add_argument("--max-steps", type=int, default=200, help="steps per episode (default 200)")
    allocate.add_argument("--over-amst", action="store_true", help="also send each episode over AMST")
    allocate.add_argument("--rtt", type=float, default=0.1, help="round trip over AMST, s (default 0.1)")
    allocate.add_argument(
        "--true-forecast", action="store_true", help="over AMST, tell the sender the true trace (diagnostic)"
    )
    allocate.add_argument("--json", action="store_true", help="print one JSON object")
    allocate.set_defaults(func=run_allocate)
    return parser


def _trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--traces", nargs="+", required=True, type=Path, metavar="PATH", help="trace files or directories"
    )
    parser.add_argument("--format", choices=("auto", "time_mbps", "mahimahi"), default="auto")
    parser.add_argument("--bin-seconds", type=float, default=1.0, help="mahimahi bin width (default 1 s)")


def _fail(message: str) -> int:
    print(f"novacron pba: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_train(args: argparse.Namespace) -> int:
    from novacron.prediction.lstm import LSTMConfig, LSTMPredictor
    from novacron.prediction.traces import load_traces

    try:
        traces = load_traces(args.traces, args.format, args.bin_seconds)
        config = LSTMConfig(
            window=args.window,
            horizon=args.horizon,
            hidden=args.hidden,
            max_epochs=args.max_epochs,
            patience=args.patience,
            val_fraction=args.val_fraction,
            seed=args.seed,
            loss=args.loss,
        )
        model = LSTMPredictor(config).fit(traces, progress=args.progress)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    model.save(args.out)
    report = model.report
    assert report is not None
    print(
        f"trained on {len(report.train_files)} files, validated on {len(report.val_files)}; "
        f"best epoch {report.best_epoch + 1}/{len(report.val_loss)} (val loss {min(report.val_loss):.4f}"
        f"{', stopped early' if report.stopped_early else ''})"
    )
    print(f"wrote {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from novacron.prediction.evaluate import MIN_HISTORY, evaluate, to_json_dict
    from novacron.prediction.lstm import LSTMPredictor
    from novacron.prediction.predictors import classical_predictors
    from novacron.prediction.traces import load_traces

    if args.horizon < 1:
        return _fail(f"--horizon must be at least 1, got {args.horizon}")
    try:
        traces = load_traces(args.traces, args.format, args.bin_seconds)
        predictors = classical_predictors()
        min_history = args.min_history or MIN_HISTORY
        if args.model is not None:
            model = LSTMPredictor.load(args.model)
            predictors.append(model)
            min_history = args.min_history or max(MIN_HISTORY, model.config.window)
        horizons = sorted({1, args.horizon})
        table = evaluate(predictors, traces, horizons, min_history)
    except (OSError, ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(to_json_dict(table, traces, min_history), sort_keys=True))
    else:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(table.round(4).to_string(index=False))
    return 0


def _finite_or_none(value: float) -> float | None:
    return float(value) if value == value else None  # NaN is not equal to itself


def run_allocate(args: argparse.Namespace) -> int:
    import pandas as pd

    from novacron.prediction.allocation import EarliestDeadlineFirst, baselines
    from novacron.prediction.traces import load_traces
    from novacron.sim.allocation import in_env, over_amst
    from novacron.sim.envs.bandwidth import BandwidthAllocationEnv, LearnedAllocator

    if args.seeds < 1 or args.max_steps < 1 or args.rtt < 0:
        return _fail("--seeds and --max-steps must be at least 1, --rtt at least 0")
    try:
        traces = load_traces(args.traces, args.format, args.bin_seconds)
        env = BandwidthAllocationEnv(traces=traces, max_steps=args.max_steps)
        allocators = {a.name: a for a in baselines()}
        if args.edf_margin is not None:
            allocators["edf_margin"] = EarliestDeadlineFirst(margin=args.edf_margin)
        for path in args.model:
            if not path.with_suffix(".zip").is_file() or not path.with_suffix(".json").is_file():
                raise ValueError(f"{path}: a learned allocator needs {path.name}.zip and {path.name}.json")
            try:
                allocators[path.name] = LearnedAllocator.load(path)
            except Exception as exc:  # a corrupt zip, JSON or state dict: say which file
                raise ValueError(f"{path}: not a learned allocator ({type(exc).__name__}: {exc})") from exc
    except (OSError, ValueError, KeyError) as exc:
        return _fail(str(exc))
    places = ["env", *(["amst_true_forecast" if args.true_forecast else "amst"] if args.over_amst else [])]
    rows = []
    episodes = [(i, seed) for i in range(len(traces)) for seed in range(args.seeds)]
    for done, (index, seed) in enumerate(episodes, 1):
        episode = env.episode(seed, index) if args.over_amst else None
        for name, allocator in allocators.items():
            rows.append({"allocator": name, "where": "env", **in_env(env, allocator, seed, index)})
            if episode is not None:
                result = over_amst(
                    episode, allocator, rtt=args.rtt, seed=seed, true_forecast=args.true_forecast
                )
                rows.append({"allocator": name, "where": places[1], **result})
        print(f"episode {done}/{len(episodes)}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    metrics = [
        m for m in ("misses", "weighted_misses", "goodput_over_capacity", "misses_nearly_done") if m in table
    ]
    grouped = table.groupby(["allocator", "where"], sort=False)[metrics]
    mean, ci95 = grouped.mean(), grouped.sem(ddof=1) * 1.96  # NaN (null in JSON) for one episode
    if args.json:
        result: dict = {
            "files": [str(t.attrs.get("path", t.attrs.get("name", ""))) for t in traces],
            "episodes": len(episodes),
            "rtt_s": args.rtt if args.over_amst else None,
            "allocators": {},
        }
        for (name, where), row in mean.iterrows():
            result["allocators"].setdefault(name, {})[where] = {
                m: {"mean": float(row[m]), "ci95": _finite_or_none(ci95.loc[(name, where), m])}
                for m in metrics
                if row[m] == row[m]  # (the environment has no near misses: NaN there)
            }
        print(json.dumps(result, sort_keys=True))
    else:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(mean.join(ci95, rsuffix="_ci95").round(3).to_string())
    return 0
