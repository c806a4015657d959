"""Simulator: AMST goodput with 1 vs N streams, CUBIC and BBR, on a long lossy WAN link.

Link: 100 ms RTT, 1% random loss, 1 Gbit/s. Baseline: what the Mathis et al.
model predicts for N Reno-like flows, ``N * MSS / RTT * sqrt(3/2) / sqrt(p)``
(capped by the link), printed beside the simulated goodput of an AMST
transfer of 256 MiB (virtual payload) with the same stream count. CUBIC's
own response function (RFC 8312) sits above Mathis on long fat paths; BBR
ignores random loss below ~20%, so it should reach the link rate with few
streams.

Run: .venv/bin/python benchmarks/bench_sim_streams.py
"""

from __future__ import annotations

import math

from common import report

from novacron.runtime import VirtualPayload
from novacron.sim import Simulation, Topology
from novacron.sim.network.congestion import MSS
from novacron.transport import AMST

RTT, LOSS, BANDWIDTH = 0.100, 0.01, 1e9
SIZE = 256 << 20


def wan() -> Topology:
    topo = Topology("wan-100ms-1pct")
    topo.add_site("a", "ra", fabric_latency=0.0)
    topo.add_site("b", "rb", fabric_latency=0.0)
    topo.add_node("x", "a", nic_latency=0.0, nic_bandwidth=10e9)
    topo.add_node("y", "b", nic_latency=0.0, nic_bandwidth=10e9)
    topo.connect_sites("a", "b", rtt=RTT, bandwidth=BANDWIDTH, loss=LOSS)
    return topo


def simulated_gbps(streams: int, congestion: str) -> float:
    sim = Simulation(wan(), seed=1)

    def app(rt):
        amst = AMST(rt)
        amst.on_receive("bench", lambda src, p: None)
        return amst

    sim.start(app)

    async def go(rt):
        return await rt.app.send(
            "y", VirtualPayload(SIZE), streams=streams, congestion=congestion, tag="bench"
        )

    return sim.run_until_complete("x", go, timeout=1e6).goodput_bps / 1e9


def mathis_gbps(streams: int) -> float:
    per_flow = MSS / RTT * math.sqrt(1.5) / math.sqrt(LOSS) * 8
    return min(BANDWIDTH, streams * per_flow) / 1e9


def main() -> None:
    rows = []
    for streams in (1, 4, 16, 64):
        rows.append(
            {
                "streams": streams,
                "mathis_gbps (baseline)": round(mathis_gbps(streams), 4),
                "cubic_gbps": round(simulated_gbps(streams, "cubic"), 4),
                "bbr_gbps": round(simulated_gbps(streams, "bbr"), 4),
            }
        )
    report(f"simulated AMST goodput, {SIZE >> 20} MiB, RTT {RTT * 1e3:g} ms, loss {LOSS:.0%}, 1 Gbit/s", rows)
    print("goodput includes connection set-up, the last chunk's latency and the final acknowledgement")


if __name__ == "__main__":
    main()
