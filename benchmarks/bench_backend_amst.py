"""AMST on the real backend: 1 GiB over N streams on loopback, against ``iperf3 -P N``.

Two processes, one node each (uvloop): the receiver runs AMST and hands the
reassembled payload to a handler; the sender runs ``AMST.send`` of a 1 GiB
buffer. The figure is end to end, framing and checksums on: from the call
to the receiver's TransferDone (every chunk's bytes checksummed from the
sender's memory to the receiver's by the record stream, AMST checking
offsets, lengths and completeness, reassembled in order). ``iperf3 -P N`` runs
interleaved with ours, on the same machine, in the same minutes. Target:
>= 0.8x iperf3 (issue 3). As in ``bench_backend_goodput.py``, the first
transfer of each stream count is a warm-up at full size and is not counted:
it pays for the receiver's reassembly buffer (a page fault per 4 KiB of a
fresh 1 GiB map), which AMST then reuses, as a long-running node does.

A third figure, also interleaved: ``raw_sockets_gbps``, the same payload moved memory to memory
by plain blocking sockets, a thread per stream on each end, no framing or checksum
(``rawcopy.py``). iperf3 never touches memory (its one buffer stays in cache); every real
transfer reads the payload on one end and writes it on the other, so ``raw/iperf3`` is what
that costs on this machine, and ``amst/raw`` how close the protocol gets to it.

Run: .venv/bin/python benchmarks/bench_backend_amst.py [--size-mib 1024] [--streams 1 8] [--repeats 3]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from common import ReceiveHandler, loopback_parser, run_two_nodes_against_iperf

from novacron.backends import AsyncioRuntime
from novacron.transport import AMST


def _listen(rt: AsyncioRuntime, handler: ReceiveHandler) -> None:
    """The receiving node takes the reassembled payloads from AMST; its TransferDone goes back
    to the sender as a message."""
    AMST(rt).on_receive("bench", handler)


def _open_sender(rt: AsyncioRuntime) -> Callable[..., Awaitable[Any]]:
    return AMST(rt).send


def main() -> None:
    args = loopback_parser(__doc__.splitlines()[0], size_mib=1024).parse_args()
    title = f"AMST on the real backend, {args.size_mib} MiB over loopback"
    run_two_nodes_against_iperf(args, title, "amst", _listen, _open_sender)


if __name__ == "__main__":
    main()
