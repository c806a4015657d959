"""Hosts, tasks and regions for ITP, loaded from the Alibaba openb trace.

The node list gives heterogeneous hosts (CPU in milli-cores, memory in MiB,
0-8 GPUs); the pod list gives tasks in arrival order with their demands and
lifetimes. GPU demands follow openb's GPU-sharing model: a task asks for
``num_gpu`` GPUs with ``gpu_milli`` thousandths of each (a fraction of one GPU
when ``num_gpu == 1``, whole GPUs otherwise), which is what makes fragmentation
matter.

Regions come from the Azure inter-region P95 RTT matrix (``novacron.data``):
hosts are spread over a few regions and every task has an origin region, so a
placement has a network cost. Everything random takes a seed and uses
:class:`numpy.random.Generator` (no global randomness in protocol code).

Bad input raises :class:`TraceError` naming the file and the 1-based data row,
because a silently skipped row would change every downstream number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import novacron.data
from novacron.data import inter_region_rtt_ms
from novacron.data import regions as all_regions

#: where the openb CSVs ship inside the package
OPENB_DIR = Path(novacron.data.__file__).parent / "placement" / "alibaba_openb"
DEFAULT_NODES = OPENB_DIR / "openb_node_list_all_node.csv"
DEFAULT_PODS = OPENB_DIR / "openb_pod_list_default.csv"
#: four continents, as in ``sim.topologies.DEFAULT_REGIONS``
DEFAULT_REGIONS = ("West Europe", "East US", "West US 2", "Southeast Asia")
#: RTT between a task and a host in the same region (the matrix has no diagonal)
INTRA_REGION_RTT_MS = 1.0
#: openb hosts have at most 8 GPUs; GPU state is a fixed-width (hosts, MAX_GPUS) array
MAX_GPUS = 8
GPU_MILLI = 1000


class TraceError(ValueError):
    """A node or pod list that cannot be used as is (names the file and row)."""


@dataclass(frozen=True)
class Hosts:
    """A set of hosts as parallel arrays (vectorised over hosts for fast decisions)."""

    names: tuple[str, ...]
    cpu: np.ndarray  # milli-cores, float64
    mem: np.ndarray  # MiB, float64
    gpus: np.ndarray  # number of GPUs, int64
    model: tuple[str, ...]
    region: np.ndarray  # index into Cluster.regions, int64 (-1 until assigned)

    def __len__(self) -> int:
        return len(self.names)

    def take(self, index: np.ndarray) -> Hosts:
        index = np.asarray(index, dtype=np.int64)
        return Hosts(
            names=tuple(self.names[i] for i in index),
            cpu=self.cpu[index],
            mem=self.mem[index],
            gpus=self.gpus[index],
            model=tuple(self.model[i] for i in index),
            region=self.region[index],
        )


@dataclass(frozen=True)
class Tasks:
    """Tasks in arrival order; times in seconds from the first arrival."""

    names: tuple[str, ...]
    cpu: np.ndarray  # milli-cores
    mem: np.ndarray  # MiB
    num_gpu: np.ndarray  # int64, 0..8
    gpu_milli: np.ndarray  # thousandths of each GPU asked for (0 when num_gpu == 0)
    arrival: np.ndarray  # seconds, non-decreasing
    duration: np.ndarray  # seconds, >= 1
    origin: np.ndarray  # region index of the task's origin (-1 until assigned)

    def __len__(self) -> int:
        return len(self.names)

    def take(self, index: np.ndarray) -> Tasks:
        index = np.asarray(index, dtype=np.int64)
        return Tasks(
            names=tuple(self.names[i] for i in index),
            cpu=self.cpu[index],
            mem=self.mem[index],
            num_gpu=self.num_gpu[index],
            gpu_milli=self.gpu_milli[index],
            arrival=self.arrival[index],
            duration=self.duration[index],
            origin=self.origin[index],
        )


@dataclass(frozen=True)
class Cluster:
    """Hosts placed in regions, with the RTT (ms) between every pair of those regions."""

    hosts: Hosts
    regions: tuple[str, ...]
    rtt_ms: np.ndarray  # (n_regions, n_regions), INTRA_REGION_RTT_MS on the diagonal

    @property
    def host_rtt_ms(self) -> np.ndarray:
        """(n_regions, n_hosts): RTT from each origin region to each host."""
        return self.rtt_ms[:, self.hosts.region]


# --------------------------------------------------------------------------- CSV loading


def _read_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise TraceError(f"{path}: missing column(s) {missing}; header is {reader.fieldnames}")
        rows = list(reader)
    if not rows:
        raise TraceError(f"{path}: no data rows")
    return rows


def _number(path: Path, row: int, row_data: dict[str, str], column: str, *, minimum: float = 0.0) -> float:
    text = (row_data.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{path}: row {row}: column {column!r} is not a number: {text!r}") from None
    if not np.isfinite(value) or value < minimum:
        raise TraceError(f"{path}: row {row}: column {column!r} must be finite and >= {minimum}: {text!r}")
    return value


def load_hosts(path: Path | str = DEFAULT_NODES) -> Hosts:
    """Every node of a node list (``sn,cpu_milli,memory_mib,gpu,model``), regions unassigned."""
    path = Path(path)
    rows = _read_rows(path, ("sn", "cpu_milli", "memory_mib", "gpu"))
    cpu, mem, gpus = [], [], []
    for i, r in enumerate(rows, start=1):
        c = _number(path, i, r, "cpu_milli")
        m = _number(path, i, r, "memory_mib")
        g = _number(path, i, r, "gpu")
        if c <= 0 or m <= 0:
            raise TraceError(f"{path}: row {i}: a host needs cpu_milli > 0 and memory_mib > 0")
        if g != int(g) or g > MAX_GPUS:
            raise TraceError(f"{path}: row {i}: gpu must be an integer 0..{MAX_GPUS}, got {r['gpu']!r}")
        cpu.append(c)
        mem.append(m)
        gpus.append(int(g))
    return Hosts(
        names=tuple(r["sn"] for r in rows),
        cpu=np.array(cpu),
        mem=np.array(mem),
        gpus=np.array(gpus, dtype=np.int64),
        model=tuple((r.get("model") or "").strip() for r in rows),
        region=np.full(len(rows), -1, dtype=np.int64),
    )


def load_tasks(path: Path | str = DEFAULT_PODS) -> Tasks:
    """Every pod of a pod list, sorted by creation time (stable), times shifted to start at 0.

    Lifetimes are ``deletion_time - creation_time``, at least 1 s (the trace has
    a zero-length pod; a zero lifetime would make slowdown undefined).
    """
    path = Path(path)
    cols = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "creation_time", "deletion_time")
    rows = _read_rows(path, cols)
    data = np.zeros((len(rows), 6))
    for i, r in enumerate(rows, start=1):
        c = _number(path, i, r, "cpu_milli")
        m = _number(path, i, r, "memory_mib")
        k = _number(path, i, r, "num_gpu")
        g = _number(path, i, r, "gpu_milli")
        t0 = _number(path, i, r, "creation_time")
        t1 = _number(path, i, r, "deletion_time")
        if k != int(k) or k > MAX_GPUS:
            raise TraceError(f"{path}: row {i}: num_gpu must be an integer 0..{MAX_GPUS}: {r['num_gpu']!r}")
        if g > GPU_MILLI:
            raise TraceError(f"{path}: row {i}: gpu_milli must be <= {GPU_MILLI}, got {r['gpu_milli']!r}")
        if k > 0 and g <= 0:
            raise TraceError(f"{path}: row {i}: num_gpu > 0 needs gpu_milli > 0")
        if t1 < t0:
            raise TraceError(f"{path}: row {i}: deletion_time {t1:g} is before creation_time {t0:g}")
        data[i - 1] = (c, m, k, g if k > 0 else 0.0, t0, max(t1 - t0, 1.0))
    order = np.argsort(data[:, 4], kind="stable")
    data = data[order]
    return Tasks(
        names=tuple(rows[j]["name"] for j in order),
        cpu=data[:, 0].copy(),
        mem=data[:, 1].copy(),
        num_gpu=data[:, 2].astype(np.int64),
        gpu_milli=data[:, 3].copy(),
        arrival=data[:, 4] - data[0, 4],
        duration=data[:, 5].copy(),
        origin=np.full(len(rows), -1, dtype=np.int64),
    )


# --------------------------------------------------------------------------- regions and sampling


def rtt_matrix_ms(region_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The P95 RTT (ms) between the given regions; :data:`INTRA_REGION_RTT_MS` on the diagonal."""
    known = set(all_regions())
    unknown = [r for r in region_names if r not in known]
    if unknown:
        raise ValueError(f"unknown region(s) {unknown}; the latency matrix has: {', '.join(sorted(known))}")
    if len(set(region_names)) != len(region_names):
        raise ValueError(f"regions listed twice: {list(region_names)}")
    matrix = inter_region_rtt_ms()
    n = len(region_names)
    out = np.full((n, n), INTRA_REGION_RTT_MS)
    for i, a in enumerate(region_names):
        for j, b in enumerate(region_names):
            if i != j:
                ms = matrix.get((a, b), matrix.get((b, a)))
                if ms is None:
                    raise KeyError(f"no RTT between {a!r} and {b!r} in the latency matrix")
                out[i, j] = ms
    return out


def build_cluster(
    hosts: Hosts,
    n_hosts: int,
    *,
    seed: int,
    region_names: tuple[str, ...] | list[str] = DEFAULT_REGIONS,
    assign: str = "round_robin",
) -> Cluster:
    """``n_hosts`` hosts drawn without replacement by ``seed``, assigned to regions.

    ``assign="round_robin"`` spreads the (shuffled) sample evenly over the
    regions; ``"random"`` draws each host's region uniformly by the same seed.
    """
    if not 1 <= n_hosts <= len(hosts):
        raise ValueError(f"n_hosts must be in 1..{len(hosts)}, got {n_hosts}")
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(hosts), size=n_hosts, replace=False))
    sample = hosts.take(index)
    n_regions = len(region_names)
    if assign == "round_robin":
        region = np.arange(n_hosts, dtype=np.int64) % n_regions
    elif assign == "random":
        region = rng.integers(0, n_regions, size=n_hosts)
    else:
        raise ValueError(f"assign must be 'round_robin' or 'random', got {assign!r}")
    sample = Hosts(sample.names, sample.cpu, sample.mem, sample.gpus, sample.model, region.astype(np.int64))
    return Cluster(hosts=sample, regions=tuple(region_names), rtt_ms=rtt_matrix_ms(region_names))


def fits_empty(cluster: Cluster, tasks: Tasks) -> np.ndarray:
    """Boolean per task: does it fit on some host of the cluster when that host is empty?"""
    h = cluster.hosts
    cpu_ok = tasks.cpu[:, None] <= h.cpu[None, :]
    mem_ok = tasks.mem[:, None] <= h.mem[None, :]
    gpu_ok = tasks.num_gpu[:, None] <= h.gpus[None, :]
    return (cpu_ok & mem_ok & gpu_ok).any(axis=1)


#: share of the pod list (from the start, in time order) held out of training for model selection
VALIDATION_FRACTION = 0.15


def split_tasks(tasks: Tasks, split: str, train_fraction: float = 0.7) -> Tasks:
    """A time-ordered part of the pod list.

    ``"train"``: the first ``train_fraction``; ``"test"``: the rest; ``"all"``: all.
    ``"train"`` is further cut for model selection: ``"fit"`` is its first part and
    ``"val"`` its last :data:`VALIDATION_FRACTION` of the whole list (so with the
    defaults fit = 0-55 %, val = 55-70 %, test = 70-100 %).

    Splitting by time (not at random) keeps evaluation on task lists the
    model never saw, as a deployed scheduler would face.
    """
    cut = int(round(len(tasks) * train_fraction))
    val_cut = int(round(len(tasks) * max(train_fraction - VALIDATION_FRACTION, 0.0)))
    if split == "all":
        return tasks
    if split == "train":
        return tasks.take(np.arange(0, cut))
    if split == "fit":
        return tasks.take(np.arange(0, val_cut))
    if split == "val":
        return tasks.take(np.arange(val_cut, cut))
    if split == "test":
        return tasks.take(np.arange(cut, len(tasks)))
    raise ValueError(f"split must be 'train', 'fit', 'val', 'test' or 'all', got {split!r}")


def make_workload(
    tasks: Tasks,
    cluster: Cluster,
    *,
    n_tasks: int,
    load: float,
    seed: int,
    max_duration: float | None = None,
) -> Tasks:
    """An episode's tasks: a window of ``n_tasks`` consecutive feasible tasks, rescaled to ``load``.

    The window starts at an offset drawn by ``seed``; tasks that fit no host of
    the cluster even when empty are dropped first (no policy could place them).
    Lifetimes are capped at ``max_duration`` (default: the 95th percentile of
    the window) because the trace's longest pods outlive any episode. Then the
    arrival times are scaled so that the offered load on the bottleneck
    resource is ``load``::

        load = max_r  sum_i demand_ir * duration_i / (span * capacity_r)

    with ``span`` the window's arrival span and ``r`` in CPU, memory, GPU.
    Inter-arrival gaps keep the trace's burstiness (clipped at its 99th
    percentile). Origins are drawn uniformly over the cluster's regions by ``seed``.
    """
    if load <= 0:
        raise ValueError(f"load must be > 0, got {load}")
    feasible = tasks.take(np.flatnonzero(fits_empty(cluster, tasks)))
    if len(feasible) < 2:
        raise ValueError("fewer than 2 tasks fit this cluster")
    n_tasks = min(n_tasks, len(feasible))
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, len(feasible) - n_tasks + 1))
    window = feasible.take(np.arange(start, start + n_tasks))
    cap = float(np.quantile(window.duration, 0.95)) if max_duration is None else float(max_duration)
    duration = np.clip(window.duration, 1.0, max(cap, 1.0))
    gaps = np.diff(window.arrival, prepend=window.arrival[0])
    positive = gaps[gaps > 0]
    clip = float(np.quantile(positive, 0.99)) if len(positive) else 1.0
    gaps = np.clip(gaps, 0.0, clip)
    if gaps.sum() <= 0:
        gaps = np.ones_like(gaps)
        gaps[0] = 0.0
    arrival = np.cumsum(gaps)
    arrival = arrival * _scale_for_load(arrival, duration, window, cluster, load)
    origin = rng.integers(0, len(cluster.regions), size=n_tasks)
    return Tasks(
        names=window.names,
        cpu=window.cpu,
        mem=window.mem,
        num_gpu=window.num_gpu,
        gpu_milli=window.gpu_milli,
        arrival=arrival,
        duration=duration,
        origin=origin.astype(np.int64),
    )


def _scale_for_load(
    arrival: np.ndarray, duration: np.ndarray, window: Tasks, cluster: Cluster, load: float
) -> float:
    """The factor on arrival times that makes the episode's mean offered load ``load`` (bisection).

    The in-episode load falls monotonically as arrivals are spread out (the
    numerator grows at most linearly with the factor, the span exactly so).
    """
    h = cluster.hosts
    span0 = max(float(arrival[-1]), 1e-9)
    demand = [
        (window.cpu, float(h.cpu.sum())),
        (window.mem, float(h.mem.sum())),
        (window.num_gpu * window.gpu_milli, float(h.gpus.sum() * GPU_MILLI)),
    ]

    def offered(scale: float) -> float:
        inside = np.minimum(duration, scale * (span0 - arrival))
        return max(float((d * inside).sum()) / (scale * span0 * c) for d, c in demand if c > 0)

    lo, hi = 1e-9, 1e9
    for _ in range(200):
        mid = float(np.sqrt(lo * hi))
        if offered(mid) > load:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-6:
            break
    return hi
