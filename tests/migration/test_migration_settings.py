"""Settings, auto-converge and workloads: the pure parts, fed numbers."""

import numpy as np
import pytest

from novacron.migration import (
    AutoConverge,
    HotColdWorkload,
    MigrationSettings,
    SettingsError,
    TraceWorkload,
    UniformWorkload,
)
from novacron.migration.settings import QEMU_DOWNTIME_LIMIT, QEMU_MAX_BANDWIDTH_BPS


def test_the_baseline_is_qemus_shipped_defaults():
    s = MigrationSettings.qemu_defaults()
    assert (s.engine, s.streams, s.compression, s.delta) == ("precopy", 1, False, False)
    assert s.max_downtime == QEMU_DOWNTIME_LIMIT == 0.3
    assert s.max_bandwidth_bps == QEMU_MAX_BANDWIDTH_BPS == 128 * 2**20 * 8
    assert s.auto_converge is False and s.zero_pages is True and s.predictor == "last"


def test_dwcp_turns_on_amst_hde_pba_and_auto_converge():
    s = MigrationSettings.dwcp()
    assert s.streams is None and s.compression and s.delta and s.auto_converge
    assert s.predictor == "robust" and s.max_bandwidth_bps is None
    assert MigrationSettings.dwcp(engine="postcopy").engine == "postcopy"


@pytest.mark.parametrize(
    "field, value",
    [
        ("engine", "teleport"),
        ("streams", 0),
        ("max_downtime", 0),
        ("max_rounds", 0),
        ("throttle_initial", 1.5),
        ("batch_bytes", 100),
        ("max_bandwidth_bps", -1.0),
        ("predictor", "oracle"),
        ("pipeline", 0),
    ],
)
def test_an_invalid_setting_is_refused_naming_the_field(field, value):
    with pytest.raises(SettingsError, match=field):
        MigrationSettings(**{field: value})


def test_auto_converge_throttles_on_the_second_high_period_then_steps_up():
    ac = AutoConverge()
    assert ac.observe(dirtied_bytes=60, transferred_bytes=100) == 0.0  # first high period: wait
    assert ac.observe(60, 100) == pytest.approx(0.20)  # second: initial throttle
    assert ac.observe(40, 100) == pytest.approx(0.20)  # dirtied <= 50% of transferred: no change
    ac.observe(60, 100)
    assert ac.observe(60, 100) == pytest.approx(0.30)  # +10% per step
    for _ in range(40):
        ac.observe(100, 1)
    assert ac.throttle == pytest.approx(0.99)  # capped


def test_a_uniform_workload_writes_inside_its_working_set_at_its_rate():
    w = UniformWorkload(rate=1000, working_set=500)
    ids = w.writes(0.0, 2.0, np.random.default_rng(0))
    assert ids.min() >= 0 and ids.max() < 500
    assert 1800 < len(ids) < 2200  # Poisson(2000)


def test_far_more_writes_than_pages_dirty_the_whole_working_set():
    ids = UniformWorkload(rate=1e9, working_set=64).writes(0.0, 1.0, np.random.default_rng(0))
    assert sorted(set(ids.tolist())) == list(range(64))


def test_a_hot_cold_workload_sends_most_writes_to_the_hot_set():
    w = HotColdWorkload(rate=10000, working_set=100000, hot_pages=1000, hot_share=0.9)
    ids = w.writes(0.0, 1.0, np.random.default_rng(1))
    assert 0.85 < np.mean(ids < 1000) < 0.95


def test_a_trace_workload_follows_its_rates_and_repeats():
    w = TraceWorkload(rates=(0.0, 1000.0), working_set=10**6, step=1.0)
    rng = np.random.default_rng(0)
    assert len(w.writes(0.0, 1.0, rng)) == 0  # first second: rate 0
    assert 900 < len(w.writes(1.0, 1.0, rng)) < 1100
    assert len(w.writes(2.0, 1.0, rng)) == 0  # the trace repeats


@pytest.mark.parametrize(
    "make",
    [
        lambda: UniformWorkload(-1, 10),
        lambda: UniformWorkload(1, 0),
        lambda: HotColdWorkload(1, 10, 11),
        lambda: TraceWorkload((), 10),
        lambda: UniformWorkload(1, 10, write_fraction=0),
    ],
)
def test_invalid_workloads_are_refused(make):
    with pytest.raises(ValueError):
        make()
