"""The latency reservoir: a uniform sample of every delivery, at a counter's cost per delivery."""

import random

import numpy as np

from novacron.sim.network.routes import Reservoir


def feed(reservoir: Reservoir, values) -> None:
    """What the delivery hot path does with each value (inlined there)."""
    for value in values:
        reservoir.add(value)


def test_the_sample_is_uniform_over_everything_offered_not_the_first_values():
    reservoir = Reservoir(1000, random.Random(7))
    feed(reservoir, range(50_000))
    sample = np.array(reservoir.values)
    assert len(sample) == 1000 and reservoir.seen == 50_000
    # uniform over 0..49,999: mean 25,000 (standard error ~456), every decile represented
    assert abs(sample.mean() - 25_000) < 2_000
    assert np.histogram(sample, bins=10, range=(0, 50_000))[0].min() > 60


class CountingReservoir(Reservoir):
    __slots__ = ("offers",)

    def offer(self, value: float) -> None:
        self.offers.append(value)
        super().offer(value)


def test_replacements_are_rare_once_the_reservoir_is_full():
    reservoir = CountingReservoir(1000, random.Random(7))
    reservoir.offers = []
    feed(reservoir, range(50_000))
    # Algorithm L: about capacity * ln(n / capacity) replacements (here ~3,900), not one per value
    assert 3_000 < len(reservoir.offers) < 5_000


def test_the_same_seed_gives_the_same_sample():
    def sample(seed):
        reservoir = Reservoir(100, random.Random(seed))
        feed(reservoir, range(10_000))
        return list(reservoir.values)

    assert sample(1) == sample(1) and sample(1) != sample(2)


class SmallBatchReservoir(Reservoir):
    """Draws its replacements 16 at a time, so that a short run crosses many batches."""

    __slots__ = ()
    BATCH = 16


def test_replacements_drawn_in_batches_stay_uniform_across_batches():
    pooled = []
    for seed in range(200):
        reservoir = SmallBatchReservoir(50, random.Random(seed))
        feed(reservoir, range(2_000))  # ~180 replacements each: a dozen batches
        pooled.extend(reservoir.values)
    deciles = np.histogram(pooled, bins=10, range=(0, 2_000))[0]
    # 10,000 values, 1,000 expected per decile (standard deviation ~30)
    assert deciles.min() > 880 and deciles.max() < 1_120
