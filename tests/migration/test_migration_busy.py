"""The link's busy time: what the codec selector judges the link by."""

import pytest

from novacron.migration.busy import BusyTime


def test_overlapping_transfers_count_once_and_gaps_not_at_all():
    busy = BusyTime()
    busy.start(0.0)
    busy.start(0.5)  # a second batch in flight
    busy.end(1.0)
    busy.end(2.0)  # busy 0 .. 2
    busy.start(3.0)  # the source encoded for a second: not busy
    busy.end(4.0)
    assert busy.seconds == 3.0 and busy.periods == 2
    assert busy.moving(4.0, rtt=0.0) == 3.0


def test_each_busy_period_loses_a_round_trip_and_an_open_one_counts_until_now():
    busy = BusyTime()
    busy.start(0.0)
    busy.end(1.0)
    busy.start(2.0)
    assert busy.moving(2.5, rtt=0.1) == pytest.approx(1.5 - 2 * 0.1)


def test_a_busy_time_shorter_than_its_round_trips_keeps_a_tenth_of_itself():
    busy = BusyTime()
    busy.start(0.0)
    busy.end(0.05)
    assert busy.moving(0.05, rtt=0.1) == pytest.approx(0.005)


def test_an_end_without_a_start_is_an_error():
    with pytest.raises(RuntimeError, match="without a matching start"):
        BusyTime().end(1.0)
