"""Giving up: the step budget, the caller's clock, and how much a realistic history costs.

No test here measures time: budgets are in search steps, and the "clock" is a fake.
"""

import pytest
from linearizability_histories import HistoryBuilder, campaign

from novacron.consensus.linearizability import check


def contended_history() -> list:
    """One key, 20 clients hammering it: far more search than a tiny budget allows."""
    return campaign(seed=1, operations=1000, keys=1, clients=20, info_rate=0.0, fail_rate=0.0)


def test_a_search_that_runs_out_of_steps_gives_up_and_names_the_key():
    result = check(contended_history(), max_steps=100)
    assert result.ok is None
    assert result.undecided == ["k0"]
    assert result.keys_checked == 0
    assert "Gave up" in result.explain() and "'k0'" in result.explain()


def test_keys_left_after_the_budget_is_spent_are_undecided_too():
    ops = campaign(seed=2, operations=400, keys=4, clients=6)
    result = check(ops, max_steps=10)
    assert result.ok is None
    assert result.keys_checked + len(result.undecided) == 4
    assert result.undecided


def test_a_failing_key_is_a_definite_verdict_even_if_another_key_is_undecided():
    h = HistoryBuilder()
    h.put("a", "1", 0, 1)
    h.get("a", "2", 2, 3)  # key 'a' fails in a few steps
    failing = h.ops
    result = check(failing + contended_history(), max_steps=1000)
    assert result.ok is False
    assert [f.key for f in result.failures] == ["a"]
    assert result.undecided == ["k0"]


def test_a_timeout_reads_the_clock_the_caller_passes():
    ticks = iter(range(1_000_000))
    result = check(contended_history(), timeout=5, clock=lambda: next(ticks))
    assert result.ok is None
    assert "timeout=5s" in result.explain()


def test_a_timeout_without_a_clock_is_refused():
    with pytest.raises(ValueError, match="clock"):
        check([], timeout=1.0)


def test_a_5000_op_history_over_20_keys_with_10_clients_is_checked_within_a_generous_step_budget():
    ops = campaign(seed=11, operations=5000, keys=20, clients=10, info_rate=0.02, fail_rate=0.01)
    result = check(ops, max_steps=200_000)
    assert result.ok is True, result.explain()
    assert result.keys_checked == 20
