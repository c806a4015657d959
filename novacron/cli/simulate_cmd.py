"""``novacron simulate``: run a scenario in the simulator, print its tables, save its results.

* ``novacron simulate [SCENARIO]`` runs a built-in scenario by name or a YAML file by path
  (default: ``default``, what ``make run`` runs), prints the summary tables and the trace hash,
  and writes CSV, Parquet and PNG files to ``--out`` (default ``results/<scenario>-seed<N>/``).
* ``--seed`` and ``--duration`` override the scenario's, so a failing seed found elsewhere can be
  replayed with the scenario unchanged.
* ``--seeds A:B`` runs seeds A..B-1 side by side (``--workers N``, default one process per core;
  :func:`novacron.sim.scenarios.run_seeds`) and prints each figure's spread over the seeds (mean,
  std, min, max) instead of one run's tables; ``seeds.csv`` holds one row per seed.
* ``--json`` prints one JSON object instead of the tables (for scripts); ``--list`` lists the
  built-in scenarios.

A progress bar (simulated seconds) goes to stderr when stderr is a terminal; ``--progress`` /
``--no-progress`` force it either way. A bad scenario exits with status 2 and one line per
problem on stderr, as argparse does for bad arguments.

The simulator is imported inside the handlers, so ``novacron --help`` and the other commands do
not pay for SimPy, pandas and matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from novacron.cli.common import positive, seed_range
from novacron.config import format_duration, parse_duration

#: exit status for an invalid scenario (argparse uses 2 for invalid arguments as well)
EXIT_INVALID = 2
DEFAULT_SCENARIO = "default"
RESULTS_ROOT = Path("results")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` command to ``subparsers``."""
    parser = subparsers.add_parser(
        "simulate",
        help="run a scenario in the deterministic simulator and report on it",
        description="Run a scenario (a built-in name or a YAML file) in the simulator: print latency, "
        "goodput, heartbeat and fault tables and the trace hash, and save CSV/Parquet/PNG results.",
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default=DEFAULT_SCENARIO,
        metavar="SCENARIO",
        help=f"built-in scenario name or YAML file (default: {DEFAULT_SCENARIO}; see --list)",
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=_seed, help="override the scenario's seed (integer >= 0)")
    seeds.add_argument(
        "--seeds",
        type=seed_range,
        metavar="A:B",
        help="run seeds A..B-1 and report the spread of each figure",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="--seeds: processes side by side (default: one per core)",
    )
    parser.add_argument(
        "--duration", type=_duration, help="override the scenario's duration in simulated time (30s, 2m, 45)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write results (default: results/<scenario>-seed<N>/, or -seeds<A>-<B>/)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    parser.set_defaults(func=run_simulate)
    return parser


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {seed}")
    return seed


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds == 0:
        raise argparse.ArgumentTypeError("must be a positive duration, not zero")
    return seconds


def run_simulate(args: argparse.Namespace) -> int:
    """Load, override, run, print, save; 2 on a bad scenario."""
    from novacron.sim.scenarios import ScenarioError, builtin_names, load_scenario, run_scenario

    if args.list:
        for name in builtin_names():
            scenario = load_scenario(name)
            print(f"{name:<12} {format_duration(scenario.duration):>5}  {scenario.description}")
        return 0
    try:
        scenario = load_scenario(args.scenario).with_overrides(seed=args.seed, duration=args.duration)
    except ScenarioError as exc:
        print(f"novacron simulate: invalid scenario:\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.seeds is not None:
        return _run_seeds(args, scenario, progress)
    result = run_scenario(scenario, progress=progress)
    out_dir = args.out if args.out is not None else RESULTS_ROOT / f"{scenario.name}-seed{scenario.seed}"
    written = result.save(out_dir)
    if args.json:
        print(json.dumps({**result.to_dict(), "out_dir": str(out_dir), "files": [str(p) for p in written]}))
        return 0
    print(result.summary())
    print(f"\nresults: {len(written)} files in {out_dir}/")
    print(f"trace hash: {result.trace_hash}")
    return 0


def _run_seeds(args: argparse.Namespace, scenario, progress: bool) -> int:
    """``--seeds``: one row per seed; printed as the spread of every figure."""
    from novacron.sim.scenarios import run_seeds

    seeds = args.seeds
    table = run_seeds(scenario, list(seeds), workers=args.workers, progress=progress)
    out_dir = (
        args.out
        if args.out is not None
        else RESULTS_ROOT / f"{scenario.name}-seeds{seeds.start}-{seeds.stop - 1}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "seeds.csv", index=False)
    if args.json:
        records = json.loads(table.to_json(orient="records"))
        print(
            json.dumps(
                {"scenario": scenario.name, "seeds": list(seeds), "rows": records, "out_dir": str(out_dir)}
            )
        )
        return 0
    figures = table.drop(columns=["seed"]).select_dtypes(include=["number", "bool"]).astype(float)
    spread = figures.agg(["mean", "std", "min", "max"]).T
    print(f"scenario {scenario.name}: seeds {seeds.start}..{seeds.stop - 1}, {len(table)} runs")
    print(spread.to_string(float_format=lambda v: f"{v:.6g}"))
    failed = int(table["error"].notna().sum()) if "error" in table else 0
    print(
        f"\nresults: {out_dir / 'seeds.csv'}"
        + (f" ({failed} seeds failed: see its error column)" if failed else "")
    )
    return 1 if failed else 0
