"""What encryption at rest costs a durable Raft store on the real backend (run by hand).

    .venv/bin/python benchmarks/bench_storage_encryption_real.py [--clients 32] [--seconds 10] [--repeats 2]

Two ``novacron cluster up --nodes 3`` clusters on loopback, one in the clear (the baseline) and one
with ``--encrypt`` (every log record and value sealed with AES-256-GCM by
``novacron.security.EncryptedStorage``), alternately, ``--repeats`` times each: the same
closed-loop load (:mod:`consensus_load`: ``C`` clients, one 10-byte put in flight each, warm-up
discarded) through ``KVClient`` puts, committed by a majority and fsync'd before acknowledging.
"""

from __future__ import annotations

import argparse

from bench_consensus_real import NODES, drive_novacron, on_cluster
from common import report
from consensus_load import LoadResult, add_load_arguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    parser.add_argument("--repeats", type=int, default=2, help="clusters of each kind, alternating (2)")
    args = parser.parse_args()
    rows = []
    for repeat in range(args.repeats):
        for label, up_args in (("in the clear (baseline)", ()), ("encrypted at rest", ("--encrypt",))):
            tally = on_cluster(drive_novacron, args, *up_args)
            name = f"Raft KV put, {label}, run {repeat + 1}"
            rows.append(LoadResult.of(name, args.clients, args.seconds, tally).row())
    report(
        f"{NODES} nodes on loopback, 10-byte puts, durable, {args.clients} closed-loop clients, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured each",
        rows,
    )


if __name__ == "__main__":
    main()
