"""``novacron dst``: deterministic simulation testing of Raft, PBFT, ASS or VM migration.

* ``novacron dst --protocol raft --seeds 0:200`` runs seeds 0..199: each a
  seeded fault schedule against a 5-node cluster (4 replicas for PBFT) with
  client load, then the linearizability, safety and progress checks.
  ``--protocol ass``: five state-sync replicas writing through the faults,
  then the convergence and no-lost-write checks (``novacron.sim.dst.sync_target``).
  ``--protocol vm``: three VM hosts and a controller starting, stopping and live-migrating
  VMs through the faults, then the one-running-copy and no-lost-VM checks
  (``novacron.sim.dst.hosting_target``).
* ``--faults partition,crash,...`` picks the fault kinds (``none`` for none);
  ``--byzantine equivocate,tamper,silent,replay`` the Byzantine behaviours
  PBFT replicas may get (up to f per seed); ``--broken VARIANT`` runs a
  deliberately broken Raft (``commit-old-terms``: the Figure 8 bug;
  ``vote-any-log``: no election restriction), which the campaign must catch.
* Seeds run side by side on one process per core (``--workers N``), or on a
  Ray cluster (``--ray ADDRESS``); the results do not depend on which.
* Prints one line per failing seed with its violations and the exact command
  that replays it, then a summary table; ``--csv FILE`` saves every seed's row.
  Exit status 1 if any seed failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from novacron.cli.common import positive, seed_range

EXIT_FAILED = 1


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "dst",
        help="deterministic fault-injection campaign against Raft or PBFT",
        description="Run seeded fault schedules with a client workload in the simulator and check "
        "linearizability, election safety, state machine safety, log matching and progress.",
    )
    parser.add_argument(
        "--protocol",
        choices=("raft", "pbft", "ass", "vm"),
        default="raft",
        help="ass: state synchronisation; vm: VM hosting and live migration",
    )
    parser.add_argument(
        "--seeds",
        type=seed_range,
        default=range(0, 20),
        metavar="A:B",
        help="seeds A..B-1 (default 0:20); a single N means N:N+1",
    )
    parser.add_argument(
        "--faults",
        type=_kinds,
        default=None,
        metavar="KINDS",
        help="comma-separated fault kinds, or 'none' (default: all)",
    )
    parser.add_argument(
        "--byzantine",
        type=_kinds,
        default=None,
        metavar="KINDS",
        help="PBFT: comma-separated Byzantine behaviours, or 'none' (default: all)",
    )
    parser.add_argument("--nodes", type=int, help="replicas (default 5 for raft, 4 for pbft)")
    parser.add_argument("--auth", choices=("ed25519", "mac"), default="ed25519", help="PBFT authentication")
    parser.add_argument(
        "--broken",
        choices=("commit-old-terms", "vote-any-log"),
        default="",
        help="Raft: run a deliberately broken variant (the campaign must catch it)",
    )
    parser.add_argument("--duration", type=float, help="simulated seconds of faults (default 15)")
    parser.add_argument("--recovery", type=float, help="simulated seconds of calm after (default 8)")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 3)")
    parser.add_argument("--keys", type=int, help="keys the clients use (default 3)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per seed to FILE")
    parser.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="local processes running seeds side by side (default: one per core; 1: in this process)",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the seeds on a Ray cluster ('auto', 'ray://HOST:10001', or 'local' to start one here; "
        "needs the 'distributed' extra)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="print the fault log of failing seeds")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None)
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=run)
    return parser


def _kinds(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    return tuple(k.strip() for k in text.split(",") if k.strip())


def build_config(args: argparse.Namespace):
    from dataclasses import replace

    from novacron.sim.dst import CampaignConfig, Workload

    options = {"protocol": args.protocol, "broken": args.broken, "auth": args.auth}
    for name in ("faults", "byzantine", "nodes", "duration", "recovery"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    workload = Workload()
    if args.clients is not None:
        workload = replace(workload, clients=args.clients)
    if args.keys is not None:
        workload = replace(workload, keys=args.keys)
    return CampaignConfig(workload=workload, **options)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from novacron.sim.dst import run_campaign

    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"novacron dst: error: {exc}", file=sys.stderr)
        return 2
    try:
        table, failures = run_campaign(
            config,
            args.seeds,
            progress=bool(args.progress) or args.progress is None,
            workers=args.workers,
            ray=args.ray,
        )
    except ImportError as exc:  # --ray without the extra
        print(f"novacron dst: error: {exc}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"seed {failure.seed} FAILED:")
        for violation in failure.violations:
            print(f"  {violation}")
        if args.verbose:
            for fault in failure.faults:
                print(f"    fault: {fault}")
        print(f"  replay: {failure.replay}")
    passed = int(table["ok"].sum())
    figures = [
        c for c in table.columns if c not in ("seed", "ok") and pd.api.types.is_numeric_dtype(table[c])
    ]
    summary = table[figures].agg(["mean", "max"])
    print(summary.round(1).to_string())
    print(f"{config.protocol}: {passed}/{len(table)} seeds passed ({len(failures)} failed)")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return EXIT_FAILED if failures else 0
