"""ASS writes on the real backend against the Raft store's, on the same cluster (run by hand).

    .venv/bin/python benchmarks/bench_sync_real.py [--clients 32] [--warmup 2] [--seconds 10]

``novacron cluster up --nodes 3`` on loopback: each member is a Raft replica of the linearizable
key-value store and an ASS replica of the eventually consistent map (``enable_v3_state_sync``),
both durable (SQLite, fsync'd before acknowledging). The same closed-loop load
(:mod:`consensus_load`: ``C`` clients, one 10-byte put in flight each, warm-up discarded) writes
first through Raft (the baseline: ``KVClient`` puts, committed by a majority), then through ASS
(``StateClient`` puts at one replica, each replacing what that replica holds: acknowledged once
durable there, then pushed to the others), in this run, on this cluster. What a write costs
when it need not be agreed on.
"""

from __future__ import annotations

import argparse

from bench_consensus_real import NODES, drive_novacron, on_cluster
from common import report
from consensus_load import LoadResult, Tally, add_load_arguments, run_async


async def drive_both(directory, args: argparse.Namespace) -> dict[str, Tally]:
    from novacron.backends.cluster_client import client_runtime
    from novacron.sync import StateClient

    raft = await drive_novacron(directory, args)
    async with client_runtime(directory) as (rt, manifest, _):
        client = StateClient(rt, [m["id"] for m in manifest["members"]], timeout=args.timeout)

        async def put(key: str, value: bytes) -> None:
            await client.put(key, value, replace_current=True)

        ass = await run_async([put] * args.clients, warmup=args.warmup, seconds=args.seconds)
    return {"raft": raft, "ass": ass}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_load_arguments(parser)
    args = parser.parse_args()
    tallies = on_cluster(drive_both, args)
    rows = [
        LoadResult.of("Raft KV put (baseline)", args.clients, args.seconds, tallies["raft"]).row(),
        LoadResult.of("ASS put at one replica", args.clients, args.seconds, tallies["ass"]).row(),
    ]
    report(
        f"{NODES} nodes on loopback, one cluster, 10-byte puts, durable, {args.clients} closed-loop clients, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured each",
        rows,
    )


if __name__ == "__main__":
    main()
