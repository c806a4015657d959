"""PeerEstimator windows and the size-differential bandwidth estimate (pure, no runtime)."""

import pytest

from novacron.mode import PeerEstimator, size_differential_bps
from novacron.runtime import TransferReport


def report(nbytes, started, finished, tag="t"):
    return TransferReport("a", "b", tag, nbytes, 1, "cubic", started, finished)


def test_window_statistics_median_min_loss():
    est = PeerEstimator("b")
    est.probe_sent(5)
    for rtt in (0.004, 0.001, 0.002, 0.100):  # one delayed probe, one lost
        est.rtt_sample(rtt)
    w = est.close(10.0, 10.5)
    assert (w.peer, w.started, w.ended) == ("b", 10.0, 10.5)
    assert w.rtt == pytest.approx(0.003)  # the median ignores the 100 ms outlier
    assert w.rtt_min == 0.001
    assert w.loss == pytest.approx(0.2)
    assert (w.probes_sent, w.probes_answered) == (5, 4)


def test_a_window_with_every_probe_lost_has_no_rtt_and_full_loss():
    est = PeerEstimator("b")
    est.probe_sent(3)
    w = est.close(0, 1)
    assert w.rtt is None and w.rtt_min is None and w.loss == 1.0
    assert est.close(1, 2).loss is None  # nothing sent: loss unknown, not zero


def test_jitter_is_the_rfc3550_estimator_over_consecutive_rtts():
    est = PeerEstimator("b")
    est.probe_sent(3)
    est.rtt_sample(0.010)
    assert est.jitter is None
    est.rtt_sample(0.012)  # |D| = 2 ms: the first difference initialises J
    assert est.jitter == pytest.approx(0.002)
    est.rtt_sample(0.012)  # |D| = 0: J += (0 - J) / 16
    assert est.jitter == pytest.approx(0.002 * 15 / 16)
    w = est.close(0, 1)
    assert w.jitter == pytest.approx(0.002 * 15 / 16)
    est.rtt_sample(0.016)  # kept across windows: |D| = 4 ms against the last sample
    assert est.jitter == pytest.approx(0.002 * 15 / 16 + (0.004 - 0.002 * 15 / 16) / 16)


def test_bandwidth_is_the_window_max_then_carried_forward():
    est = PeerEstimator("b")
    est.bandwidth_sample(2e9, "active")
    est.bandwidth_sample(5e9, "passive")
    est.bandwidth_sample(3e9, "active")
    w = est.close(0, 1)
    assert (w.bandwidth_bps, w.bandwidth_source, w.bandwidth_samples) == (5e9, "passive", 3)
    w = est.close(1, 2)  # no sample: the previous estimate, marked as carried
    assert (w.bandwidth_bps, w.bandwidth_source, w.bandwidth_samples) == (5e9, "carried", 0)
    est.bandwidth_sample(0.3e9, "active")  # a drop shows in the very next window
    assert est.close(2, 3).bandwidth_bps == 0.3e9


def test_bandwidth_never_measured_is_none_and_useless_samples_are_ignored():
    est = PeerEstimator("b")
    est.bandwidth_sample(0.0, "active")
    est.bandwidth_sample(float("inf"), "active")
    w = est.close(0, 1)
    assert w.bandwidth_bps is None and w.bandwidth_source is None


def test_size_differential_cancels_fixed_per_transfer_costs():
    # 10 Gbit/s path, 20 ms of fixed cost per transfer (set-up + acknowledgement).
    small = report(64 * 1024, 0.0, 0.020 + 64 * 1024 * 8 / 10e9)
    large = report(1 << 20, 1.0, 1.020 + (1 << 20) * 8 / 10e9)
    assert large.goodput_bps < 0.5e9  # plain goodput would call this a slow link
    assert size_differential_bps(small, large) == pytest.approx(10e9)


def test_size_differential_falls_back_to_goodput_on_meaningless_timings():
    small = report(1000, 0.0, 0.010)
    large = report(100_000, 1.0, 1.009)  # faster than the small one: timing noise
    assert size_differential_bps(small, large) == large.goodput_bps
    assert size_differential_bps(large, small) == small.goodput_bps  # sizes in the wrong order
