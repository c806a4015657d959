"""Real-backend bulk goodput (``rt.transfer``) on loopback, 1 and 8 streams, against iperf3.

Two processes, one node each (uvloop), as in production and as ``iperf3``
runs: a receiver node whose ``on_transfer`` handler accepts the payload, and
a sender node that calls ``rt.transfer``. Baseline: ``iperf3 -P N`` (TCP,
127.0.0.1), its runs interleaved with ours so both see the same background
load; medians are reported. Install it with ``sudo apt-get install iperf3``
(Debian/Ubuntu); where it is missing the NovaCron figures are still printed
and the comparison is skipped with a message. Target: NovaCron >= 0.8x iperf3.

NovaCron's figure is end to end: from ``await rt.transfer(...)`` to the
receiver's acknowledgement (which it sends once its handler has run on the
whole, reassembled payload), including connection set-up, per-stream
CRC-32 checks and reassembly into one buffer. The first transfer of each
stream count is a warm-up at full size and is not counted: it pays for the
receiver's buffer (see ``RuntimeOptions.transfer_buffer_pool``), as a
long-running node does once.

A third figure, also interleaved: ``raw_sockets_gbps``, the same payload moved memory to memory
by plain blocking sockets, a thread per stream on each end, no framing or checksum
(``rawcopy.py``). iperf3 never touches memory (its one buffer stays in cache); every real
transfer reads the payload on one end and writes it on the other, so ``raw/iperf3`` is what
that costs on this machine, and ``novacron/raw`` how close the protocol gets to it.

Run: .venv/bin/python benchmarks/bench_backend_goodput.py [--size-mib 512] [--streams 1 8] [--repeats 3]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from common import ReceiveHandler, loopback_parser, run_two_nodes_against_iperf

from novacron.backends import AsyncioRuntime


def _listen(rt: AsyncioRuntime, handler: ReceiveHandler) -> None:
    """The receiving node takes whole payloads from the runtime's own bulk transfers (it
    acknowledges each on the transfer's connection, once the handler has run)."""
    rt.on_transfer("bench", handler)


def _open_sender(rt: AsyncioRuntime) -> Callable[..., Awaitable[Any]]:
    return rt.transfer


def main() -> None:
    parser = loopback_parser(__doc__.splitlines()[0], size_mib=512)
    parser.add_argument("--iperf-seconds", type=float, default=4)
    args = parser.parse_args()
    title = f"rt.transfer on the real backend, {args.size_mib} MiB over loopback, two processes"
    run_two_nodes_against_iperf(
        args, title, "novacron", _listen, _open_sender, iperf_seconds=args.iperf_seconds
    )


if __name__ == "__main__":
    main()
