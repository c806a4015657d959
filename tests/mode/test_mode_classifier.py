"""The classification rule: thresholds, boundaries, missing data, node-level aggregation."""

import pytest

from novacron.mode import DEFAULT_THRESHOLDS, Mode, Thresholds, classify, most_conservative, parse_mode

MS = 1e-3
GBIT = 1e9
DC, HY, NET = Mode.DATACENTER, Mode.HYBRID, Mode.INTERNET


@pytest.mark.parametrize(
    ("rtt", "bps", "expected"),
    [
        # clear cases
        (0.2 * MS, 25 * GBIT, DC),
        (30 * MS, 10 * GBIT, HY),
        (80 * MS, 10 * GBIT, NET),
        (1 * MS, 0.5 * GBIT, NET),
        # the 10 ms boundary: strictly below is datacenter, exactly 10 ms is not
        (9.999 * MS, 10 * GBIT, DC),
        (10 * MS, 10 * GBIT, HY),
        (10.001 * MS, 10 * GBIT, HY),
        # the 50 ms boundary: exactly 50 ms is not internet, strictly above is
        (49.999 * MS, 10 * GBIT, HY),
        (50 * MS, 10 * GBIT, HY),
        (50.001 * MS, 10 * GBIT, NET),
        # the 1 Gbit/s boundary: exactly 1 Gbit/s is neither > (datacenter) nor < (internet)
        (1 * MS, 1 * GBIT, HY),
        (1 * MS, 1 * GBIT + 1, DC),
        (1 * MS, 1 * GBIT - 1, NET),
        (30 * MS, 1 * GBIT, HY),
        (30 * MS, 1 * GBIT - 1, NET),
        # internet by bandwidth alone even when the RTT is datacenter-like, and by RTT alone
        (0.1 * MS, 100e6, NET),
        (200 * MS, 100 * GBIT, NET),
    ],
)
def test_classify_follows_the_rule_at_and_around_every_threshold(rtt, bps, expected):
    assert classify(rtt, bps) == expected


def test_a_window_decides_only_what_its_measurements_determine():
    assert classify(80 * MS, None) == NET  # > 50 ms is internet whatever the bandwidth
    assert classify(None, 0.2 * GBIT) == NET  # < 1 Gbit/s is internet whatever the RTT
    assert classify(1 * MS, None) is None  # datacenter or hybrid: needs the bandwidth
    assert classify(30 * MS, None) is None
    assert classify(None, 10 * GBIT) is None
    assert classify(None, None) is None


def test_custom_thresholds_open_a_bandwidth_band_for_hybrid():
    t = Thresholds(datacenter_max_rtt=5 * MS, internet_min_rtt=100 * MS, datacenter_min_bps=10 * GBIT)
    assert classify(1 * MS, 5 * GBIT, t) == HY
    assert classify(1 * MS, 11 * GBIT, t) == DC
    assert classify(80 * MS, 11 * GBIT, t) == HY
    with pytest.raises(ValueError):
        Thresholds(datacenter_max_rtt=60 * MS)
    with pytest.raises(ValueError):
        Thresholds(internet_max_bps=2 * GBIT)


def test_defaults_are_the_original_designs():
    assert DEFAULT_THRESHOLDS == Thresholds(0.010, 0.050, 1e9, 1e9)


def test_node_mode_is_the_most_conservative_peer_mode():
    assert most_conservative([DC, DC, HY]) == HY
    assert most_conservative([DC, NET, HY]) == NET
    assert most_conservative([None, DC]) == DC
    assert most_conservative([None]) is None
    assert most_conservative([]) is None


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("datacenter", DC),
        ("Internet", NET),
        (" HYBRID ", HY),
        ("", None),
        ("auto", None),
        (None, None),
        (HY, HY),
    ],
)
def test_parse_mode_reads_the_config_spelling(text, mode):
    assert parse_mode(text) == mode


def test_parse_mode_names_the_allowed_values():
    with pytest.raises(ValueError, match="datacenter, hybrid, internet"):
        parse_mode("lan")
