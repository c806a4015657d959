"""Sweeps: one function run over many parameter points, in parallel, collected in one table.

A question asked of a simulation is usually a grid: loads x seeds, loss rates x stream counts,
fault kinds x seeds. :func:`sweep` runs ``fn(**point)`` for every point and returns a pandas
DataFrame, one row per point (or per row ``fn`` returned), the point's parameters first::

    from novacron.sim.sweep import grid, sweep

    def misses(load: float, seed: int) -> dict:
        ...  # build and run a simulation from (load, seed) alone
        return {"misses": ..., "goodput": ...}

    table = sweep(misses, grid(load=[0.5, 0.8], seed=range(20)), progress=True)
    table.groupby("load")[["misses", "goodput"]].mean()

Where it runs: on a pool of local processes by default (one per core), in this process with
``workers=1`` (no pickling; breakpoints work), or on a Ray cluster given its address
(``ray="auto"``, ``"ray://head:10001"``, or ``"local"`` to start one on this machine; needs the
``distributed`` extra, and novacron installed on the cluster's nodes). Functions defined in a
notebook or a script work too: they are sent to the workers by value (cloudpickle).

What it promises, and why:

* **The same table for any number of workers.** Rows come back in the points' order whatever
  order they finish in. ``fn`` must take its randomness from its parameters (a ``seed`` axis), as
  every simulation here does; then a parallel sweep equals the serial one, bit for bit.
* **A failing point does not cost the others.** An exception in ``fn`` becomes that row's
  ``error`` (``"ValueError: ..."``; the full traceback is logged), and the sweep goes on; so does
  a worker process that dies (a crash, the kernel's OOM killer): the points it was running are run
  again one by one in fresh processes, so that only the one that kills its process is lost.
  ``errors="raise"`` stops at the first failure instead (:class:`SweepError`).

:func:`run_points` is the layer below: the same execution, returning what ``fn`` returned
(:class:`Outcome`) instead of a table, for callers that need the objects themselves (the
consensus campaigns, ``novacron.sim.dst``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing
import os
import pickle
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Literal

import cloudpickle
import pandas as pd

log = logging.getLogger(__name__)

#: points handed to each worker ahead of time (more: a dead worker takes more points with it;
#: fewer: workers wait for the parent between points)
AHEAD_PER_WORKER = 2
#: the column that holds a failed point's error
ERROR_COLUMN = "error"


@dataclass(frozen=True)
class Outcome:
    """One point's run: what ``fn`` returned, or why it did not return."""

    point: dict[str, Any]
    value: Any = None
    error: str | None = None  # "ValueError: load must be in (0, 1]" (None: it returned)
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class SweepError(RuntimeError):
    """A point failed and the sweep was asked to stop (``errors="raise"``)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"point {outcome.point} failed: {outcome.error}\n{outcome.traceback or ''}".rstrip())
        self.outcome = outcome


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, as nested loops would visit them (the last axis
    varies fastest): ``grid(load=[0.5, 0.8], seed=range(2))`` -> 4 points."""
    names = list(axes)
    values = [list(v) for v in axes.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def sweep(
    fn: Callable[..., Any],
    points: Iterable[Mapping[str, Any]],
    *,
    workers: int | None = None,
    ray: str | None = None,
    progress: bool = False,
    desc: str = "sweep",
    errors: Literal["record", "raise"] = "record",
) -> pd.DataFrame:
    """``fn(**point)`` for every point, as one DataFrame (see the module doc).

    ``fn`` returns a mapping (one row), a DataFrame or a list of mappings (several rows), a
    dataclass instance (one row of its fields) or anything else (one row, column ``value``). A
    returned column named like a parameter is kept when it agrees with it and renamed
    ``<name>_returned`` when it does not. ``workers``: local processes (default: one per core;
    1: in this process). ``ray``: a Ray cluster's address instead (``"local"``: start one here,
    with ``workers`` CPUs). ``progress``: a bar on stderr.
    ``errors``: ``"record"`` (a failed point's row has an ``error``) or ``"raise"``.
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    outcomes = run_points(
        fn, points, workers=workers, ray=ray, progress=progress, desc=desc, stop_on_error=errors == "raise"
    )
    rows = [row for outcome in outcomes for row in _rows(outcome)]
    table = pd.DataFrame(rows)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        log.warning(
            "%s: %d of %d points failed; the first: %s", desc, len(failed), len(outcomes), failed[0].error
        )
        table = table[[c for c in table.columns if c != ERROR_COLUMN] + [ERROR_COLUMN]]
    return table


def run_points(
    fn: Callable[..., Any],
    points: Iterable[Mapping[str, Any]],
    *,
    workers: int | None = None,
    ray: str | None = None,
    progress: bool = False,
    desc: str = "sweep",
    stop_on_error: bool = False,
) -> list[Outcome]:
    """``fn(**point)`` for every point; one :class:`Outcome` per point, in the points' order.

    ``stop_on_error``: raise :class:`SweepError` at the first failure (the points still running
    are let finish, the rest are not started).
    """
    points = _check_points(points)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    outcomes: list[Outcome | None] = [None] * len(points)
    bar = _progress_bar(len(points), desc) if progress else None

    def done(index: int, outcome: Outcome) -> None:
        outcomes[index] = outcome
        if not outcome.ok:
            log.warning("%s: point %s failed:\n%s", desc, outcome.point, outcome.traceback or outcome.error)
        if bar is not None:
            bar.update(1)
        if stop_on_error and not outcome.ok:
            raise SweepError(outcome)

    try:
        if ray is not None:
            _run_on_ray(fn, points, ray, workers, done)
        else:
            n = min(workers or default_workers(), len(points))
            if n <= 1:
                for index, point in enumerate(points):
                    done(index, _evaluate(fn, point))
            else:
                _run_on_pool(fn, points, n, done)
    finally:
        if bar is not None:
            bar.close()
    return [o for o in outcomes if o is not None]


def default_workers() -> int:
    """One worker per core this process may run on (its CPU affinity, which a container or
    ``taskset`` narrows; ``os.cpu_count()`` counts the whole machine's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


# -- running one point ---------------------------------------------------------------------------
def _evaluate(fn: Callable[..., Any], point: dict[str, Any]) -> Outcome:
    try:
        return Outcome(point, fn(**point))
    except Exception as exc:  # the point's failure is data, not the sweep's end
        return Outcome(point, None, f"{type(exc).__name__}: {exc}", traceback.format_exc())


def _pickle(fn: Callable[..., Any]) -> bytes:
    """``fn`` for the workers, with this process's import path. cloudpickle sends closures and
    the functions of ``__main__`` (a notebook, a script) by value, and those of importable modules
    by name, which a worker must resolve on the path as it is here now (a process pool's workers
    are given it by multiprocessing; a Ray worker starts with its own)."""
    return pickle.dumps((list(sys.path), cloudpickle.dumps(fn)))


def _evaluate_pickled(payload: bytes, point: dict[str, Any]) -> Outcome:
    """In a worker: the path first, then ``fn`` (whose unpickling imports its modules)."""
    path, fn = pickle.loads(payload)
    sys.path.extend(entry for entry in path if entry not in sys.path)
    return _evaluate(cloudpickle.loads(fn), point)


# -- a local process pool ------------------------------------------------------------------------
def _run_on_pool(
    fn: Callable[..., Any], points: list[dict[str, Any]], workers: int, done: Callable[[int, Outcome], None]
) -> None:
    """Points go out a few per worker at a time; if a worker dies, the points that were out are
    run again one by one (each in a fresh one-process pool), which pins the death on its point."""
    payload = _pickle(fn)
    pending = deque(range(len(points)))
    while pending:
        suspects = _pool_pass(payload, points, pending, workers, done)
        for index in suspects:
            if not _pool_pass(payload, points, deque([index]), 1, done):
                continue
            done(index, Outcome(points[index], None, "the worker process died while running this point"))


def _pool_pass(
    payload: bytes,
    points: list[dict[str, Any]],
    pending: deque[int],
    workers: int,
    done: Callable[[int, Outcome], None],
) -> list[int]:
    """Run pending points on one pool until they are done or the pool breaks; returns the
    indices that were out when it broke (taken from ``pending``)."""
    # forkserver: workers forked from a clean single-threaded server, not from this process
    # (whose threads, e.g. torch's or a progress bar's, a fork would copy mid-flight)
    context = _context()
    running: dict[Future[Outcome], int] = {}
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        try:
            while pending or running:
                while pending and len(running) < workers * AHEAD_PER_WORKER:
                    index = pending.popleft()
                    running[pool.submit(_evaluate_pickled, payload, points[index])] = index
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        return [index, *running.values()]
                    except Exception as exc:  # the result could not come back (e.g. not picklable)
                        outcome = Outcome(
                            points[index], None, f"{type(exc).__name__}: {exc}", traceback.format_exc()
                        )
                    done(index, outcome)
        except BaseException:
            for future in running:
                future.cancel()
            raise
    return []


def _context() -> multiprocessing.context.BaseContext:
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # the server imports this module (numpy, pandas) once; each worker forks from it ready to run
    context.set_forkserver_preload([__name__])
    return context


# -- a Ray cluster -------------------------------------------------------------------------------
def _run_on_ray(
    fn: Callable[..., Any],
    points: list[dict[str, Any]],
    address: str,
    workers: int | None,
    done: Callable[[int, Outcome], None],
) -> None:
    """``address`` "local" starts Ray on this machine (with ``workers`` CPUs, default all) and
    stops it after; otherwise it connects to the cluster there, unless Ray is already running in
    this process (then that is used, and left running)."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "sweeps on Ray need the 'distributed' extra: pip install 'novacron[distributed]'"
        ) from None
    started = not ray.is_initialized()
    if started:
        local = address == "local"
        ray.init(
            address=None if local else address,
            num_cpus=workers if local else None,
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        remote = ray.remote(_evaluate_pickled)
        payload = ray.put(_pickle(fn))
        refs = {remote.remote(payload, point): index for index, point in enumerate(points)}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    index = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task's worker died, after Ray's retries
                        outcome = Outcome(points[index], None, f"{type(exc).__name__}: {exc}")
                    done(index, outcome)
        except BaseException:
            for ref in refs:
                ray.cancel(ref)
            raise
    finally:
        if started:
            ray.shutdown()


# -- points in, rows out -------------------------------------------------------------------------
def _check_points(points: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    checked = []
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise TypeError(
                f"point {i} is a {type(point).__name__}, not a mapping of parameter names to values"
            )
        bad = [k for k in point if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise ValueError(f"point {i} has parameter names that are not identifiers: {bad}")
        checked.append(dict(point))
    return checked


def _records(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, Mapping):
        return [dict(value)]
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return [dict(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [{f.name: getattr(value, f.name) for f in dataclasses.fields(value)}]
    return [{"value": value}]


def _rows(outcome: Outcome) -> list[dict[str, Any]]:
    if not outcome.ok:
        return [{**outcome.point, ERROR_COLUMN: outcome.error}]
    rows = []
    for record in _records(outcome.value):
        row = dict(outcome.point)
        for key, value in record.items():
            if key in outcome.point and not _same(value, outcome.point[key]):
                key = f"{key}_returned"
            row[key] = value
        rows.append(row)
    return rows


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # arrays and other values without one truth
        return False


def _progress_bar(total: int, desc: str):
    from tqdm import tqdm  # text, also in a notebook (tqdm.auto's widget needs ipywidgets)

    return tqdm(total=total, desc=desc, unit="point", disable=None, file=sys.stderr)
