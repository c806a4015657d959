"""Hand-built placement episodes for tests that need exact numbers: a few hosts, a few tasks.

Memory never binds (every host has plenty, every task asks for 1 MiB).
"""

from __future__ import annotations

import numpy as np

from novacron.placement.cluster import Cluster, Hosts, Tasks
from novacron.placement.state import PlacementSim


def hand_episode(hosts, tasks, *, rtt_ms, max_wait: float) -> PlacementSim:
    """``hosts``: (cpu milli, GPUs, region) rows; ``tasks``: (cpu milli, GPUs, milli per GPU,
    arrival s, duration s, origin region) rows; ``rtt_ms``: the regions' RTT matrix."""
    cpu, gpus, region = (np.array(c) for c in zip(*hosts, strict=True))
    n = len(cpu)
    cluster_hosts = Hosts(
        names=tuple(f"h{i}" for i in range(n)),
        cpu=cpu.astype(float),
        mem=np.full(n, 1e6),
        gpus=gpus.astype(np.int64),
        model=("",) * n,
        region=region.astype(np.int64),
    )
    task_cpu, num_gpu, gpu_milli, arrival, duration, origin = (np.array(c) for c in zip(*tasks, strict=True))
    k = len(task_cpu)
    workload = Tasks(
        names=tuple(f"t{i}" for i in range(k)),
        cpu=task_cpu.astype(float),
        mem=np.ones(k),
        num_gpu=num_gpu.astype(np.int64),
        gpu_milli=gpu_milli.astype(float),
        arrival=arrival.astype(float),
        duration=duration.astype(float),
        origin=origin.astype(np.int64),
    )
    rtt = np.asarray(rtt_ms, dtype=float)
    regions = tuple(f"r{i}" for i in range(len(rtt)))
    cluster = Cluster(hosts=cluster_hosts, regions=regions, rtt_ms=rtt)
    return PlacementSim(cluster, workload, max_wait=max_wait)
