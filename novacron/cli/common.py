"""What several commands share: argument types (seed ranges, counts) and the client loop of
``novacron kv`` and ``novacron state``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

#: exit status for bad arguments or a request the cluster refused as malformed
EXIT_USAGE = 2
#: exit status of a cluster client whose request got no answer (it may still have taken effect)
EXIT_UNKNOWN = 3
#: where ``novacron cluster up`` puts a cluster unless told otherwise
CLUSTER_DIR = Path("novacron-cluster")


def add_cluster_argument(parser: argparse.ArgumentParser) -> None:
    """``--cluster DIR``: the cluster a client command talks to (what ``cluster up`` wrote)."""
    parser.add_argument("--cluster", type=Path, default=CLUSTER_DIR, help="the cluster's directory")


def run_client(prog: str, main: Callable[[], Awaitable[int]]) -> int:
    """Run ``main()`` on a fresh event loop and return its exit status; a ``ValueError`` (no cluster
    there, a bad argument) is printed as ``prog: message`` and exits with :data:`EXIT_USAGE`."""
    from novacron.backends import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        loop.close()


def seed_range(text: str) -> range:
    try:
        if ":" in text:
            a, b = (int(part) for part in text.split(":", 1))
        else:
            a = int(text)
            b = a + 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be A:B or N (integers), got {text!r}") from None
    if a < 0 or b <= a:
        raise argparse.ArgumentTypeError(f"seeds A:B need 0 <= A < B, got {text!r}")
    return range(a, b)


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value
