"""``novacron kv get|put|delete|cas``: a client of the replicated key-value store.

Talks to the cluster in ``--cluster DIR`` (what ``novacron cluster up``
wrote) through one of its client slots. Values are UTF-8 text on the command
line. Exit status 0 on success, 1 when a compare-and-set did not swap or a
get found nothing, 3 when the outcome is unknown (no answer in time: the
write may still happen), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from novacron.cli.common import EXIT_UNKNOWN, add_cluster_argument


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "kv",
        help="get/put/delete/cas on a cluster's replicated key-value store",
        description=(__doc__ or "").split("\n\n")[1],
    )
    parser.add_argument("op", choices=("get", "put", "delete", "cas"))
    parser.add_argument("key")
    parser.add_argument("values", nargs="*", help="put: VALUE; cas: EXPECTED NEW (EXPECTED '-' means absent)")
    add_cluster_argument(parser)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before the outcome is unknown")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    want = {"get": 0, "delete": 0, "put": 1, "cas": 2}[args.op]
    if len(args.values) != want:
        print(
            f"novacron kv: {args.op} takes {want} value(s) after the key, got {len(args.values)}",
            file=sys.stderr,
        )
        return 2
    from novacron.cli.common import run_client

    return run_client("novacron kv", lambda: _run(args))


async def _run(args: argparse.Namespace) -> int:
    from novacron.backends.cluster_client import connect
    from novacron.consensus.client import OutcomeUnknown, Rejected

    async with connect(args.cluster, timeout=args.timeout) as kv:
        try:
            if args.op == "get":
                value = await kv.get(args.key)
                if value is None:
                    print(f"{args.key}: (absent)")
                    return 1
                print(value.decode("utf-8", "replace"))
            elif args.op == "put":
                await kv.put(args.key, args.values[0].encode())
                print("ok")
            elif args.op == "delete":
                await kv.delete(args.key)
                print("ok")
            else:
                expected = None if args.values[0] == "-" else args.values[0].encode()
                swapped = await kv.cas(args.key, expected, args.values[1].encode())
                print("swapped" if swapped else "not swapped: the value was not the expected one")
                return 0 if swapped else 1
        except OutcomeUnknown as exc:
            print(f"novacron kv: outcome unknown: {exc}", file=sys.stderr)
            return EXIT_UNKNOWN
        except Rejected as exc:
            print(f"novacron kv: rejected: {exc}", file=sys.stderr)
            return 1
    return 0


def wait_until_serving(directory: Path, *, timeout: float) -> float | None:
    """Seconds until the cluster answered a read, or None if it did not within ``timeout``."""
    from novacron.backends import new_event_loop

    async def probe() -> float | None:
        from novacron.backends.cluster_client import connect
        from novacron.consensus.client import OutcomeUnknown

        start = time.monotonic()
        async with connect(directory, timeout=1.0) as kv:
            while time.monotonic() - start < timeout:
                try:
                    await kv.get("__novacron_probe__")
                    return time.monotonic() - start
                except OutcomeUnknown:
                    continue
        return None

    loop = new_event_loop()
    try:
        return loop.run_until_complete(probe())
    finally:
        loop.close()
