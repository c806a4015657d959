"""How many streams a DWCP migration uses: each count judged on its own delivery rate."""

from __future__ import annotations

import pytest

from novacron.migration import MigrationSettings
from novacron.migration.steering import StreamSteering
from novacron.prediction.predictors import HarmonicMean, LastValue
from novacron.sim.migration import simulate_migration
from novacron.transport.dataplane import ContentMix

MiB = 1 << 20
BATCH = 32 * MiB
RANDOM = ContentMix(0.0, 0.0, 1.0)


class Recorder:
    """A stream controller that records what it is told and answers a fixed next count."""

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.told: list[tuple[int, float]] = []

    def observe(self, peer: str, streams: int, goodput_bps: float) -> int:
        self.told.append((streams, goodput_bps))
        return self.answer


def steering(answer: int = 4, samples: int = 1, predictor=None) -> tuple[StreamSteering, Recorder]:
    recorder = Recorder(answer)
    return StreamSteering(recorder, "p", predictor or LastValue(), 4, samples=samples), recorder


def rate(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds


def test_a_count_is_measured_from_its_first_completion_on():
    s, rec = steering()
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)  # paid the start-up: opens the window only
    assert rec.told == []
    s.delivered(4, BATCH, BATCH, launched=0.5, now=1.5)
    assert rec.told == [(4, pytest.approx(rate(BATCH, 0.5)))]


def test_batches_finishing_with_the_windows_first_count_in_neither():
    s, rec = steering()
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0001)  # its pipeline partner: no 0.1 ms window
    assert rec.told == []
    s.delivered(4, BATCH, 2 * BATCH, launched=1.0, now=2.0)
    assert rec.told == [(4, pytest.approx(rate(2 * BATCH, 1.0)))]


def test_the_gap_between_rounds_is_not_counted():
    s, rec = steering(samples=2)
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)
    s.delivered(4, BATCH, BATCH, launched=0.5, now=1.5)
    s.new_round()  # (the source syncs its dirty log, decides whether to stop, ...)
    s.delivered(4, BATCH, BATCH, launched=10.0, now=10.5)  # this round's first: opens a window
    s.delivered(4, BATCH, BATCH, launched=10.5, now=11.0)
    assert rec.told == [(4, pytest.approx(rate(2 * BATCH, 0.5 + 0.5)))]


def test_the_controller_hears_the_predictors_forecast_once_a_count_has_enough_batches():
    s, rec = steering(samples=2, predictor=HarmonicMean())
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)
    s.delivered(4, BATCH, BATCH, launched=0.5, now=1.5)
    assert rec.told == []
    s.delivered(4, BATCH, BATCH, launched=1.0, now=2.5)
    first, second = rate(BATCH, 0.5), rate(2 * BATCH, 1.5)
    assert rec.told == [(4, pytest.approx(2 / (1 / first + 1 / second)))]


def test_a_new_count_starts_afresh_and_batches_sent_before_it_are_no_evidence():
    s, rec = steering(answer=8)
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)
    assert s.delivered(4, BATCH, BATCH, launched=0.5, now=1.5) == 8
    assert s.delivered(4, BATCH, BATCH, launched=1.0, now=2.0) == 8  # still sent with 4 streams
    s.delivered(8, BATCH, BATCH, launched=1.5, now=2.2)  # the new count's first: opens its window
    s.delivered(8, BATCH, BATCH, launched=2.0, now=2.45)
    assert rec.told[-1] == (8, pytest.approx(rate(BATCH, 0.25)))
    assert len(rec.told) == 2


def test_a_batch_of_another_size_starts_a_new_window():
    # Round 0's batches grow with the measured rate (32 -> 128 MiB on loopback), and larger
    # batches move faster per byte whatever the count: a window mixing sizes would favour the
    # count that happened to get the larger ones.
    s, rec = steering(samples=2)
    s.delivered(4, BATCH, BATCH, launched=0.0, now=1.0)
    s.delivered(4, BATCH, BATCH, launched=0.5, now=1.5)  # counted: 1 of 2
    s.delivered(4, 4 * BATCH, 4 * BATCH, launched=1.5, now=2.0)  # 4x larger: opens a new window
    s.delivered(4, 4 * BATCH, 4 * BATCH, launched=2.0, now=2.5)
    assert rec.told == [(4, pytest.approx(rate(BATCH + 4 * BATCH, 0.5 + 0.5)))]


def test_samples_must_be_positive():
    with pytest.raises(ValueError, match="samples"):
        StreamSteering(Recorder(4), "p", LastValue(), 4, samples=0)


@pytest.mark.parametrize("mix", [RANDOM, ContentMix(0.3, 0.3, 0.4)], ids=["random", "realistic"])
def test_in_a_datacenter_where_more_streams_do_not_help_it_stays_at_the_modes_minimum(mix):
    # Judged by the round's running average (which rises all round whatever the count), these
    # migrations climbed to 128-256 streams; 32 move the same bytes as fast.
    report = simulate_migration(MigrationSettings.dwcp(), link="datacenter", memory=1024 * MiB, mix=mix)
    fixed = simulate_migration(
        MigrationSettings.dwcp(streams=256), link="datacenter", memory=1024 * MiB, mix=mix
    )
    assert report.ok and report.streams == 32
    assert report.total_time <= fixed.total_time * 1.01
