"""Simulated seconds per wall-clock second: 100 nodes exchanging heartbeats every 100 ms.

Every node sends a heartbeat to each of its 99 peers every 100 ms and each
peer acknowledges: about 198,000 message deliveries per simulated second,
on a hybrid topology (3 regions x 2 datacenters, WAN jitter included).
There is no external baseline for this figure; it is reported beside the
message-rate benchmark's raw SimPy rate so the two can be related.

Run: .venv/bin/python benchmarks/bench_sim_heartbeats.py
"""

from __future__ import annotations

import time

from common import report

from novacron.monitoring import HeartbeatService
from novacron.sim import Simulation, topologies

SIM_SECONDS = 5.0


def run_once() -> dict:
    topo = topologies.hybrid(datacenters_per_region=2, nodes_per_datacenter=17)  # 102 nodes
    nodes = sorted(topo.nodes)[:100]
    sim = Simulation(topo, seed=1)
    sim.start(lambda rt: HeartbeatService(rt, interval=0.1), nodes=nodes)
    start = time.perf_counter()
    sim.run(until=SIM_SECONDS)
    wall = time.perf_counter() - start
    return {
        "nodes": len(nodes),
        "simulated_s": SIM_SECONDS,
        "wall_s": round(wall, 2),
        "sim_s_per_wall_s": round(SIM_SECONDS / wall, 3),
        "deliveries_per_wall_s": round(sim.network.delivered / wall),
    }


def main() -> None:
    best = max((run_once() for _ in range(3)), key=lambda r: r["sim_s_per_wall_s"])
    report("100 nodes, heartbeats every 100 ms (best of 3)", [best])


if __name__ == "__main__":
    main()
