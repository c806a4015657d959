"""PBA's AllocatedSender on the real backend, against a plain AMST transfer of the same payload.

Two processes, one node each, on loopback (as ``bench_backend_amst.py``): the receiving node runs
one AMST with two tags, a plain handler and an ``AllocatedReceiver``; the sending node alternates
``AMST.send`` of a payload over 16 streams (the baseline: what the link and AMST give) and the same
payload as one job of an ``AllocatedSender`` (EDF, a lone job gets share 1 and 16 streams), which
cuts it into pieces of a window sized from the throughput it measures. The figure is the job's
goodput (bytes over the time from submission to the receiver's confirmation of the last piece)
over the baseline's, interleaved, median of the repeats: what running transfers through the
allocation layer costs on a fast link.

The sender starts from ``--initial-mbps`` (a node's first guess, say its network mode's nominal
rate) and learns the link as it sends, so the first job shows the ramp; the sender is kept across
jobs, as a node keeps it, and the later jobs start from what it measured. One warm-up of each
(buffers, streams) is not counted.

Run: .venv/bin/python benchmarks/bench_backend_allocated.py [--size-mib 256] [--repeats 3]
     [--step 0.1] [--initial-mbps 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from common import ReceiveHandler, report, two_nodes

from novacron.backends import AsyncioRuntime, new_event_loop
from novacron.prediction.allocation import EarliestDeadlineFirst
from novacron.prediction.transfers import AllocatedReceiver, AllocatedSender
from novacron.transport import AMST

STREAMS = 16  # EDF's stream count for a lone job (the allocators' default maximum)


def _listen(rt: AsyncioRuntime, handler: ReceiveHandler) -> None:
    """The receiving node: plain AMST transfers on tag "bench", allocated jobs on tag "pba"."""
    amst = AMST(rt)
    amst.on_receive("bench", handler)
    AllocatedReceiver(rt, amst, lambda src, name, payload: handler(src, payload), max_buffered=4 << 30)


async def _run(args: argparse.Namespace, payload: bytes) -> list[dict]:
    async with two_nodes(_listen, expected=2 * (args.repeats + 1)) as rt:
        amst = AMST(rt)
        sender = AllocatedSender(
            rt, amst, "rx", EarliestDeadlineFirst(), initial_mbps=args.initial_mbps, step=args.step
        )
        runner = rt.spawn(sender.run())
        rows = []
        for i in range(args.repeats + 1):
            start = time.perf_counter()
            await amst.send("rx", payload, streams=STREAMS, tag="bench")
            plain = len(payload) * 8 / (time.perf_counter() - start) / 1e9
            outcome = await sender.submit(f"job{i}", payload, rt.now() + 600.0)
            assert outcome.met, outcome
            allocated = len(payload) * 8 / (outcome.finished - outcome.submitted) / 1e9
            print(
                f"{'warm-up' if i == 0 else f'repeat {i}'}: AMST.send {plain:.2f} Gbit/s, "
                f"AllocatedSender {allocated:.2f} Gbit/s (its forecast after the job "
                f"{sender.forecast()[0] / 1e3:.2f} Gbit/s)",
                flush=True,
            )
            if i > 0:
                rows.append({"amst_gbps": plain, "allocated_gbps": allocated})
        sender.close()
        await runner
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--step", type=float, default=0.1, help="the sender's planning step, s")
    parser.add_argument("--initial-mbps", type=float, default=1000.0, help="the sender's first guess")
    args = parser.parse_args()
    payload = os.urandom(args.size_mib << 20)
    loop = new_event_loop()
    try:
        rows = loop.run_until_complete(_run(args, payload))
    finally:
        loop.close()
    amst, allocated = (statistics.median(r[k] for r in rows) for k in ("amst_gbps", "allocated_gbps"))
    summary = {
        "payload_mib": args.size_mib,
        "step_s": args.step,
        "amst_send_gbps": round(amst, 2),
        "allocated_sender_gbps": round(allocated, 2),
        "ratio": round(allocated / amst, 3),
    }
    report(f"AllocatedSender vs AMST.send, loopback, two processes (median of {args.repeats})", [summary])


if __name__ == "__main__":
    main()
