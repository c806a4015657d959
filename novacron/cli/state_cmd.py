"""``novacron state get|put|delete``: a client of a cluster's ASS map (state synchronisation).

Talks to the cluster in ``--cluster DIR`` (what ``novacron cluster up`` wrote) through one of its
client slots, at one replica (``--replica``, default the first that answers). A put or delete
replaces what that replica holds when it arrives (``--blind``: replaces nothing, so it stands
beside concurrent values as a sibling). ``get`` prints the values, one per line (several after
concurrent writes); ``get --all`` asks every replica and prints each one's values. Values are
UTF-8 text on the command line. Exit status 0 on success, 1 when a get found nothing, 3 when no
replica answered (a write may still have applied), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys

from novacron.cli.common import EXIT_UNKNOWN, add_cluster_argument


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "state",
        help="get/put/delete on a cluster's ASS map (any replica, eventually consistent)",
        description=(__doc__ or "").split("\n\n")[1],
    )
    parser.add_argument("op", choices=("get", "put", "delete"))
    parser.add_argument("key")
    parser.add_argument("value", nargs="?", help="put: the value")
    add_cluster_argument(parser)
    parser.add_argument("--replica", help="the replica to ask first (default: the members in order)")
    parser.add_argument(
        "--blind", action="store_true", help="put/delete: replace nothing (a concurrent write)"
    )
    parser.add_argument("--all", action="store_true", help="get: every replica's values")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds a replica has to answer")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.op == "put") != (args.value is not None):
        print(
            f"novacron state: {args.op} takes {'one value' if args.op == 'put' else 'no value'}",
            file=sys.stderr,
        )
        return 2
    from novacron.cli.common import run_client

    return run_client("novacron state", lambda: _run(args))


async def _run(args: argparse.Namespace) -> int:
    from novacron.backends.cluster_client import client_runtime
    from novacron.sync import NoReplicaAnswered, StateClient

    async with client_runtime(args.cluster) as (rt, manifest, _):
        members = [m["id"] for m in manifest["members"]]
        if args.replica is not None and args.replica not in members:
            raise ValueError(f"no replica {args.replica!r} in the cluster; members: {', '.join(members)}")
        order = (
            members if args.replica is None else [args.replica, *(m for m in members if m != args.replica)]
        )
        try:
            if args.op == "get" and args.all:
                found = False
                for member in members:
                    state = await StateClient(rt, [member], timeout=args.timeout).get(args.key)
                    found |= bool(state.values)
                    print(f"{member}: {_show(state.values)}")
                return 0 if found else 1
            client = StateClient(rt, order, timeout=args.timeout)
            if args.op == "get":
                state = await client.get(args.key)
                if not state.values:
                    print(f"{args.key}: (absent)")
                    return 1
                for value in state.values:
                    print(value.decode("utf-8", "replace"))
            elif args.op == "put":
                await client.put(args.key, args.value.encode(), replace_current=not args.blind)
                print("ok")
            else:
                await client.delete(args.key, replace_current=not args.blind)
                print("ok")
        except NoReplicaAnswered as exc:
            print(f"novacron state: {exc}", file=sys.stderr)
            return EXIT_UNKNOWN
    return 0


def _show(values: list[bytes]) -> str:
    return " | ".join(v.decode("utf-8", "replace") for v in values) if values else "(absent)"
