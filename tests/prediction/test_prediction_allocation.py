"""The bandwidth allocators on hand-made cases: shares, stream counts and the four baselines."""

from __future__ import annotations

import numpy as np
import pytest

from novacron.prediction.allocation import (
    EarliestDeadlineFirst,
    EqualShare,
    ProportionalToRemaining,
    RobustMPCAllocator,
    Transfer,
    baselines,
    streams_for,
)
from novacron.prediction.predictors import RobustMPC


def test_prediction_allocation_equal_share_splits_evenly():
    transfers = [Transfer(10, 5), Transfer(1, 2), Transfer(100, 9)]
    alloc = EqualShare().allocate([10.0], transfers)
    assert alloc.shares == pytest.approx([1 / 3] * 3)
    assert list(alloc.streams) == [8, 8, 8]  # 4 + (16 - 4) / 3


def test_prediction_allocation_proportional_follows_remaining_bytes():
    alloc = ProportionalToRemaining().allocate([10.0], [Transfer(30, 5), Transfer(10, 5)])
    assert alloc.shares == pytest.approx([0.75, 0.25])


def test_prediction_allocation_edf_gives_earliest_deadline_everything_it_can_use():
    # capacity 10 Mb per step; the urgent transfer needs 4 Mb (share 0.4), the next could use it all
    transfers = [Transfer(50, 9), Transfer(4, 1), Transfer(50, 3)]
    alloc = EarliestDeadlineFirst().allocate([10.0, 10.0], transfers)
    assert alloc.shares == pytest.approx([0.0, 0.4, 0.6])
    # a big urgent transfer takes the whole link
    alloc = EarliestDeadlineFirst().allocate([10.0], [Transfer(50, 9), Transfer(40, 1)])
    assert alloc.shares == pytest.approx([0.0, 1.0])
    assert list(alloc.streams) == [0, 16]
    # ties on the deadline: higher priority first
    alloc = EarliestDeadlineFirst().allocate([10.0], [Transfer(40, 2, 1 / 3), Transfer(40, 2, 1.0)])
    assert alloc.shares == pytest.approx([0.0, 1.0])


def test_prediction_allocation_edf_fills_the_link_when_everyone_can_finish():
    alloc = EarliestDeadlineFirst().allocate([10.0], [Transfer(2, 1), Transfer(3, 4)])
    assert alloc.shares == pytest.approx([0.4, 0.6])  # 0.2 and 0.3 scaled up to use the link


def test_prediction_allocation_robust_mpc_reserves_rates_for_feasible_deadlines():
    mpc = RobustMPCAllocator()
    assert isinstance(mpc.predictor, RobustMPC)
    # 10 Mb/step for 5 steps: A needs 20 Mb by step 5 (rate share 0.4), B 10 Mb by step 2 (0.5)
    alloc = mpc.allocate([10.0] * 5, [Transfer(20, 5, 1.0), Transfer(10, 2, 1.0)])
    assert alloc.shares.sum() == pytest.approx(1.0)
    assert alloc.shares[1] >= 0.5 - 1e-9 and alloc.shares[0] >= 0.4 - 1e-9
    # an infeasible low-priority transfer does not displace a feasible one
    alloc = mpc.allocate([10.0] * 3, [Transfer(100, 2, 1 / 3), Transfer(20, 3, 1.0)])
    assert alloc.shares[1] >= 20 / 30 - 1e-9


@pytest.mark.parametrize("allocator", baselines(), ids=lambda a: a.name)
def test_prediction_allocation_baselines_return_valid_shares(allocator):
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        transfers = [
            Transfer(float(rng.exponential(20)), int(rng.integers(1, 30)), float(rng.choice([1 / 3, 1])))
            for _ in range(n)
        ]
        alloc = allocator.allocate(rng.uniform(0, 20, size=5), transfers)
        assert alloc.shares.shape == (n,) and (alloc.shares >= 0).all()
        assert alloc.shares.sum() == pytest.approx(1.0)
        assert ((alloc.streams == 0) | ((alloc.streams >= 4) & (alloc.streams <= 16))).all()
    assert allocator.allocate([5.0], []).shares.shape == (0,)


def test_prediction_allocation_streams_follow_share_within_bounds():
    assert list(streams_for(np.array([0.0, 0.01, 0.5, 1.0]), 4, 16)) == [0, 4, 10, 16]
    with pytest.raises(ValueError):
        streams_for(np.array([0.5]), 8, 4)


def test_prediction_allocation_greedy_fill_is_edf_fill_in_any_order():
    from novacron.prediction.allocation import edf_order, greedy_fill, usable_shares

    transfers = [Transfer(50, 9), Transfer(4, 1), Transfer(50, 3)]
    usable = usable_shares(np.array([10.0]), transfers, 1.0)
    assert usable == pytest.approx([5.0, 0.4, 5.0])
    assert greedy_fill(usable, edf_order(transfers)) == pytest.approx(
        EarliestDeadlineFirst().allocate([10.0], transfers).shares
    )
    assert greedy_fill(usable, [0, 1, 2]) == pytest.approx([1.0, 0.0, 0.0])
    assert greedy_fill(np.array([0.1, 0.3]), [1, 0]) == pytest.approx([0.25, 0.75])  # leftover spread


def test_prediction_allocation_water_fill_caps_and_redistributes():
    from novacron.prediction.allocation import water_fill

    # equal weights, the first can only use 0.1: the other two split the rest
    assert water_fill(np.ones(3), np.array([0.1, 5.0, 5.0])) == pytest.approx([0.1, 0.45, 0.45])
    assert water_fill(np.array([3.0, 1.0]), np.array([5.0, 5.0])) == pytest.approx([0.75, 0.25])
    # everyone capped: the leftover is spread in proportion (work-conserving)
    assert water_fill(np.ones(2), np.array([0.1, 0.3])) == pytest.approx([0.25, 0.75])
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(1, 9))
        shares = water_fill(rng.random(n) + 1e-3, rng.exponential(0.3, n))
        assert (shares >= 0).all() and shares.sum() == pytest.approx(1.0)


def test_prediction_allocation_edf_margin_asks_more_than_the_forecast_need():
    transfers = [Transfer(4, 1), Transfer(50, 3)]
    assert EarliestDeadlineFirst().allocate([10.0], transfers).shares == pytest.approx([0.4, 0.6])
    edf = EarliestDeadlineFirst(margin=1.5)
    assert edf.name == "edf_margin" and EarliestDeadlineFirst().name == "edf"
    assert edf.allocate([10.0], transfers).shares == pytest.approx([0.6, 0.4])
    with pytest.raises(ValueError):
        EarliestDeadlineFirst(margin=0.0)
