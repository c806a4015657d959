"""ModeTracker, the pure hysteresis state machine, fed windows directly (no runtime)."""

import itertools
from collections import Counter

import pytest

from novacron.mode import Measurement, Mode, ModeTracker, Transition

DC, HY, NET = Mode.DATACENTER, Mode.HYBRID, Mode.INTERNET
MS, GBIT = 1e-3, 1e9


def window(rtt, bps, peer="p"):
    return Measurement(peer, 0.0, 1.0, rtt, rtt, 0.0, 0.0, 5, 5, bps, "active", 1)


def feed_all(tracker, observed):
    return [tracker.feed_mode(m) for m in observed]


def test_first_conclusive_window_decides_at_once():
    t = ModeTracker(3)
    assert t.feed_mode(None) is None and t.mode is None
    assert t.feed_mode(HY) == Transition(None, HY)
    assert t.mode == HY


def test_a_change_needs_k_consecutive_windows():
    t = ModeTracker(3)
    t.feed_mode(DC)
    assert feed_all(t, [NET, NET]) == [None, None]
    assert t.mode == DC and t.pending == [NET, NET]
    assert t.feed_mode(NET) == Transition(DC, NET)
    assert t.mode == NET and t.pending == []


def test_a_window_agreeing_with_the_mode_resets_the_count():
    t = ModeTracker(3)
    t.feed_mode(DC)
    assert feed_all(t, [NET, NET, DC, NET, NET]) == [None] * 5
    assert t.mode == DC
    assert t.feed_mode(NET) == Transition(DC, NET)


def test_inconclusive_windows_neither_count_nor_reset():
    t = ModeTracker(3)
    t.feed_mode(DC)
    assert feed_all(t, [NET, None, None, NET]) == [None] * 4
    assert t.feed_mode(NET) == Transition(DC, NET)
    assert t.last is NET


def test_disagreeing_windows_switch_to_their_majority_ties_to_the_latest():
    t = ModeTracker(3)
    t.feed_mode(DC)
    assert feed_all(t, [HY, NET, HY]) == [None, None, Transition(DC, HY)]
    t = ModeTracker(3)
    t.feed_mode(DC)
    assert feed_all(t, [NET, HY, NET]) == [None, None, Transition(DC, NET)]
    t = ModeTracker(2)
    t.feed_mode(DC)
    assert feed_all(t, [HY, NET]) == [None, Transition(DC, NET)]
    t = ModeTracker(2)  # an internet link heals; the window measured during the change read hybrid
    t.feed_mode(NET)
    assert feed_all(t, [HY, DC]) == [None, Transition(NET, DC)]
    t = ModeTracker(4)
    t.feed_mode(NET)
    assert feed_all(t, [DC, HY, HY, DC]) == [None, None, None, Transition(NET, DC)]


def test_an_oscillating_borderline_link_does_not_flap():
    t = ModeTracker(3)
    t.feed_mode(DC)
    for _ in range(50):
        assert feed_all(t, [HY, DC]) == [None, None]
        assert feed_all(t, [HY, HY, DC]) == [None, None, None]
    assert t.mode == DC


def test_with_one_window_every_change_goes_through_and_a_borderline_link_flaps():
    t = ModeTracker(1)
    t.feed_mode(DC)
    changes = [x for x in feed_all(t, [HY, DC] * 10) if x is not None]
    assert len(changes) == 20


def test_forced_mode_never_changes():
    t = ModeTracker(1, forced=NET)
    assert t.mode == NET
    assert feed_all(t, [DC, DC, DC, HY, None]) == [None] * 5
    assert t.mode == NET and t.last is None


def test_feed_classifies_the_window_with_the_thresholds():
    t = ModeTracker(1)
    assert t.feed(window(0.5 * MS, 20 * GBIT)) == Transition(None, DC)
    assert t.feed(window(20 * MS, 20 * GBIT)) == Transition(DC, HY)
    assert t.feed(window(None, None)) is None  # all probes lost, never measured: inconclusive
    assert t.feed(window(20 * MS, 0.1 * GBIT)) == Transition(HY, NET)


def test_at_least_one_window_is_required():
    with pytest.raises(ValueError):
        ModeTracker(0)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exhaustively_every_sequence_of_seven_windows(k):
    """For all 4**7 sequences over {DC, HY, NET, inconclusive}: the tracker changes mode exactly
    when the spec says, to the mode the spec says."""
    alphabet = [DC, HY, NET, None]
    for sequence in itertools.product(alphabet, repeat=7):
        t = ModeTracker(k)
        mode, run = None, []  # the spec, tracked independently
        for observed in sequence:
            result = t.feed_mode(observed)
            if observed is None:
                assert result is None
                continue
            if mode is None:
                assert result == Transition(None, observed)
                mode = observed
                continue
            if observed == mode:
                run = []
                assert result is None
                continue
            run.append(observed)
            if len(run) < k:
                assert result is None, (sequence, k)
                continue
            counts = Counter(run)
            best = max(counts.values())
            expected = next(m for m in reversed(run) if counts[m] == best)  # ties: the latest
            assert result == Transition(mode, expected), (sequence, k)
            mode, run = expected, []
        assert t.mode == mode
