"""One place that turns settings and a seed into an episode (shared by env, CLI and experiments).

The host sample is fixed by ``cluster_seed`` (a deployment has one cluster);
the task window, its origins and its offered load change with the episode
seed. CSVs are parsed once per process (they are read-only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .cluster import (
    DEFAULT_NODES,
    DEFAULT_PODS,
    DEFAULT_REGIONS,
    Cluster,
    Hosts,
    Tasks,
    build_cluster,
    load_hosts,
    load_tasks,
    make_workload,
    split_tasks,
)
from .state import PlacementSim


@lru_cache(maxsize=8)
def cached_hosts(path: str) -> Hosts:
    return load_hosts(path)


@lru_cache(maxsize=8)
def cached_tasks(path: str) -> Tasks:
    return load_tasks(path)


@dataclass(frozen=True)
class Scenario:
    """Settings of a placement episode.

    ``load`` is the offered load on the bottleneck resource (see
    :func:`~novacron.placement.cluster.make_workload`); ``split`` picks the
    time-ordered train (first 70 %) or test (last 30 %) part of the pod list, or
    the two parts of train used for model selection, fit (0-55 %) and val (55-70 %);
    ``max_wait`` (seconds) is how long a task waits before it is rejected
    (default: the median lifetime in the episode).

    The defaults (16 hosts, 512 tasks) make ``load`` bite: an episode needs
    several times more task demand than the cluster holds, or even ``load=0.9``
    fits at once and no policy is ever tested.
    """

    nodes: Path | str = DEFAULT_NODES
    pods: Path | str = DEFAULT_PODS
    n_hosts: int = 16
    n_tasks: int = 512
    load: float = 0.8
    cluster_seed: int = 0
    regions: tuple[str, ...] = DEFAULT_REGIONS
    assign: str = "round_robin"
    split: str = "all"
    max_wait: float | None = None

    def cluster(self) -> Cluster:
        return build_cluster(
            cached_hosts(str(self.nodes)),
            self.n_hosts,
            seed=self.cluster_seed,
            region_names=self.regions,
            assign=self.assign,
        )

    def episode(self, seed: int, cluster: Cluster | None = None) -> PlacementSim:
        """A fresh simulator for episode ``seed`` (same seed, same episode).

        ``PlacementEnv.reset(seed=s)`` does not call this with ``s``: it draws the episode's seed
        from its own seeded generator (returned as ``info["episode_seed"]``), so that an unseeded
        ``reset()`` gives a new episode. To score a heuristic on an environment's episode, reset
        it and run on ``env.sim``, as ``experiments/itp_compare.py`` and ``novacron itp evaluate`` do.
        """
        cluster = self.cluster() if cluster is None else cluster
        tasks = split_tasks(cached_tasks(str(self.pods)), self.split)
        workload = make_workload(tasks, cluster, n_tasks=self.n_tasks, load=self.load, seed=seed)
        return PlacementSim(cluster, workload, max_wait=self.max_wait)
