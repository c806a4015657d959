"""What the command-line clients of a running cluster share (``novacron kv``, ``novacron state``)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

#: exit status for bad arguments or a request the cluster refused as malformed
EXIT_USAGE = 2


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
