"""Sweeps (``novacron.sim.sweep``): one function over a grid, on a process pool, in this process or
on Ray, always the same table; a failing point or a dying worker costs only its own row."""

import logging
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from novacron.sim.sweep import SweepError, grid, run_points, sweep


def noisy_mean(load: float, seed: int) -> dict:
    """A stand-in for a simulation: everything random comes from the point's seed."""
    rng = np.random.default_rng(seed)
    draws = rng.exponential(load, size=1000)
    return {"mean": float(draws.mean()), "p99": float(np.quantile(draws, 0.99))}


def fails_at_three(x: int) -> dict:
    if x == 3:
        raise ValueError("x must not be 3")
    return {"square": x * x}


def dies_at_two(x: int) -> dict:
    if x == 2:
        os._exit(7)  # as a segfault or the OOM killer would end it: no exception, no cleanup
    return {"square": x * x}


def slower_first(x: int, n: int) -> dict:
    time.sleep(0.05 * (n - x))  # the first points finish last
    return {"x2": 2 * x, "pid": os.getpid()}


def returns_unpicklable(x: int):
    return {"f": lambda: x}


@dataclass
class Summary:
    count: int
    label: str


def test_grid_visits_the_points_as_nested_loops_would():
    assert grid(load=[0.5, 0.8], seed=range(2)) == [
        {"load": 0.5, "seed": 0},
        {"load": 0.5, "seed": 1},
        {"load": 0.8, "seed": 0},
        {"load": 0.8, "seed": 1},
    ]
    assert grid(load=[], seed=range(3)) == []


def test_a_parallel_sweep_gives_the_serial_table_bit_for_bit():
    points = grid(load=[0.5, 0.8, 1.0], seed=range(4))
    serial = sweep(noisy_mean, points, workers=1)
    parallel = sweep(noisy_mean, points, workers=2)
    assert list(serial.columns) == ["load", "seed", "mean", "p99"]
    assert len(serial) == 12
    pd.testing.assert_frame_equal(parallel, serial, check_exact=True)


def test_rows_come_back_in_the_points_order_whatever_order_they_finish_in():
    table = sweep(slower_first, grid(x=range(6), n=[6]), workers=2)
    assert table["x"].tolist() == list(range(6))
    assert table["x2"].tolist() == [0, 2, 4, 6, 8, 10]
    assert os.getpid() not in set(table["pid"])  # it ran on the pool


def test_a_failing_point_becomes_its_rows_error_and_the_others_run(caplog):
    with caplog.at_level(logging.WARNING, logger="novacron.sim.sweep"):
        table = sweep(fails_at_three, grid(x=range(6)), workers=2)
    assert table.columns[-1] == "error"
    failed = table[table["error"].notna()]
    assert failed["x"].tolist() == [3]
    assert failed["error"].iloc[0] == "ValueError: x must not be 3"
    ok = table[table["error"].isna()]
    assert ok["square"].tolist() == [0, 1, 4, 16, 25]
    assert "x must not be 3" in caplog.text and "Traceback" in caplog.text  # the traceback is logged


def test_errors_raise_stops_at_the_first_failure_and_names_its_point():
    with pytest.raises(SweepError, match=r"point \{'x': 3\} failed: ValueError: x must not be 3") as err:
        sweep(fails_at_three, grid(x=range(6)), workers=1, errors="raise")
    assert err.value.outcome.point == {"x": 3}


def test_a_worker_that_dies_costs_only_the_point_that_killed_it():
    table = sweep(dies_at_two, grid(x=range(8)), workers=2)
    assert table["x"].tolist() == list(range(8))
    dead = table[table["error"].notna()]
    assert dead["x"].tolist() == [2]
    assert "worker process died" in dead["error"].iloc[0]
    assert table[table["error"].isna()]["square"].tolist() == [0, 1, 9, 16, 25, 36, 49]


def test_functions_defined_on_the_spot_run_on_the_pool():
    """A closure over a local, as a notebook cell would define: sent by value (cloudpickle)."""
    factor = 7
    table = sweep(lambda x: {"y": factor * x}, grid(x=range(4)), workers=2)
    assert table["y"].tolist() == [0, 7, 14, 21]


def test_a_module_put_on_the_path_after_the_pool_started_is_found_by_its_workers(tmp_path, monkeypatch):
    """As in a notebook: a sweep, then a folder of one's own code on ``sys.path``, then a sweep of a
    function from there (sent by name: the workers must import it). Ray's workers, which start
    with their own path, are checked by the Ray test below (its function lives in this module)."""
    sweep(noisy_mean, grid(load=[1.0], seed=[0, 1]), workers=2)  # the pool's server is up
    (tmp_path / "late_helpers_for_sweep.py").write_text("def triple(x):\n    return {'y': 3 * x}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from late_helpers_for_sweep import triple

    table = sweep(triple, grid(x=range(4)), workers=2)
    assert "error" not in table and table["y"].tolist() == [0, 3, 6, 9]


def test_a_result_that_cannot_come_back_is_that_points_error():
    table = sweep(returns_unpicklable, grid(x=range(3)), workers=2)
    assert table["error"].notna().all()
    assert all("pickle" in e.lower() for e in table["error"])


def test_what_fn_returns_becomes_rows():
    frames = sweep(lambda n: pd.DataFrame({"i": range(n)}), grid(n=[2, 3]), workers=1)
    assert frames[["n", "i"]].values.tolist() == [[2, 0], [2, 1], [3, 0], [3, 1], [3, 2]]
    records = sweep(lambda n: [{"i": i} for i in range(n)], grid(n=[1, 2]), workers=1)
    assert records[["n", "i"]].values.tolist() == [[1, 0], [2, 0], [2, 1]]
    dataclasses = sweep(lambda n: Summary(n, f"n{n}"), grid(n=[1, 2]), workers=1)
    assert dataclasses.to_dict("records") == [
        {"n": 1, "count": 1, "label": "n1"},
        {"n": 2, "count": 2, "label": "n2"},
    ]
    scalars = sweep(lambda n: n / 2, grid(n=[1, 2]), workers=1)
    assert scalars["value"].tolist() == [0.5, 1.0]


def test_a_returned_column_named_like_a_parameter_is_kept_apart_when_it_disagrees():
    table = sweep(lambda seed, load: {"seed": seed, "load": 0.9}, [{"seed": 1, "load": 0.5}], workers=1)
    assert table.to_dict("records") == [{"seed": 1, "load": 0.5, "load_returned": 0.9}]


@pytest.mark.parametrize(
    ("points", "options", "message"),
    [
        ([1, 2], {}, "point 0 is a int, not a mapping"),
        ([{"a b": 1}], {}, "not identifiers"),
        ([{"x": 1}], {"workers": 0}, "workers must be >= 1"),
        ([{"x": 1}], {"errors": "ignore"}, "errors must be 'record' or 'raise'"),
    ],
)
def test_bad_input_is_named(points, options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        sweep(lambda x: x, points, **options)


def test_run_points_gives_what_fn_returned():
    outcomes = run_points(lambda n: Summary(n, "s"), grid(n=[1, 2]), workers=2)
    assert [o.value for o in outcomes] == [Summary(1, "s"), Summary(2, "s")]
    assert all(o.ok for o in outcomes)


def test_an_empty_sweep_is_an_empty_table():
    assert sweep(noisy_mean, [], workers=2).empty


def test_ray_without_the_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r"novacron\[distributed\]"):
        sweep(noisy_mean, grid(load=[1.0], seed=[0]), ray="local")


def mean_unless_three(x: int, load: float) -> dict:
    return fails_at_three(x) | noisy_mean(load, seed=x)


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_cluster_gives_the_same_table():
    """One local Ray instance (started and stopped by the sweep): the serial table, failures included."""
    points = grid(x=range(5), load=[0.5, 1.0])
    on_ray = sweep(mean_unless_three, points, ray="local", workers=2)
    pd.testing.assert_frame_equal(on_ray, sweep(mean_unless_three, points, workers=1), check_exact=True)
    assert on_ray["error"].notna().tolist() == [False] * 6 + [True, True] + [False] * 2


def test_the_default_is_one_worker_per_core_this_process_may_use(monkeypatch):
    from novacron.sim import sweep as module

    monkeypatch.setattr(module.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert module.default_workers() == 3
