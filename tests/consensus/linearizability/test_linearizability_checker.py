"""What the checker accepts and rejects: one behaviour per test, on histories small enough to draw.

Intervals are ``start, end``; an operation without an end has an unknown
outcome (``info``). Values are short strings (stored as bytes).
"""

from linearizability_histories import HistoryBuilder

from novacron.consensus.history import History
from novacron.consensus.linearizability import CheckResult, check, check_history


def linearizable(h: HistoryBuilder) -> bool | None:
    return check(h.ops).ok


# --- Linearizable histories -------------------------------------------------------------------------


def test_an_empty_history_is_linearizable():
    assert check([]).ok is True


def test_a_read_before_any_write_sees_the_key_absent():
    h = HistoryBuilder()
    h.get("x", None, 0, 1)
    assert linearizable(h)


def test_a_sequential_history_that_follows_the_register_semantics_is_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.get("x", "1", 2, 3)
    h.put("x", "2", 4, 5)
    h.get("x", "2", 6, 7)
    assert linearizable(h)


def test_concurrent_operations_may_take_effect_in_another_order_than_they_were_invoked():
    # Porcupine's first register example: both reads overlap the write, the later-invoked
    # read sees the old value and the earlier-invoked one the new value.
    h = HistoryBuilder()
    h.put("x", "100", 0, 100)
    h.get("x", "100", 25, 75)
    h.get("x", None, 30, 60)
    assert linearizable(h)


def test_a_read_concurrent_with_a_write_may_see_either_value():
    for seen in ("1", "2"):
        h = HistoryBuilder()
        h.put("x", "1", 0, 1)
        h.put("x", "2", 2, 5)
        h.get("x", seen, 3, 4)
        assert linearizable(h), seen


def test_concurrent_writes_may_take_effect_in_either_order():
    for last in ("1", "2"):
        h = HistoryBuilder()
        h.put("x", "1", 0, 5, client="a")
        h.put("x", "2", 1, 4, client="b")
        h.get("x", last, 6, 7)
        assert linearizable(h), last


def test_operations_that_touch_at_one_instant_count_as_concurrent():
    h = HistoryBuilder()
    h.put("x", "1", 0, 2)
    h.get("x", None, 2, 3)  # invoked at the very instant the write returned
    assert linearizable(h)


def test_an_info_write_may_take_effect_long_after_its_invocation():
    h = HistoryBuilder()
    h.put("x", "1", 0)  # timed out
    h.get("x", None, 10, 11)
    h.get("x", None, 20, 21)
    h.get("x", "1", 30, 31)
    assert linearizable(h)


def test_an_info_write_may_never_take_effect():
    h = HistoryBuilder()
    h.put("x", "1", 0)
    h.get("x", None, 10, 11)
    h.put("x", "2", 12, 13)
    h.get("x", "2", 30, 31)
    assert linearizable(h)


def test_a_pending_operation_counts_as_info():
    h = HistoryBuilder()
    h.put("x", "1", 0, status="pending")
    h.get("x", None, 1, 2)
    h.get("x", "1", 3, 4)
    assert linearizable(h)


def test_the_output_of_an_info_operation_is_not_checked():
    h = HistoryBuilder()
    h.get("x", "never-written", 0, status="info")
    h.cas("x", "a", "b", True, 0, status="info")
    assert linearizable(h)


def test_a_failed_write_is_ignored():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.put("x", "2", 2, 3, status="fail")
    h.get("x", "1", 4, 5)
    assert linearizable(h)


def test_a_cas_swaps_when_the_current_value_is_the_expected_one():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.cas("x", "1", "2", True, 2, 3)
    h.get("x", "2", 4, 5)
    assert linearizable(h)


def test_a_cas_does_not_swap_when_the_current_value_differs():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.cas("x", "3", "2", False, 2, 3)
    h.get("x", "1", 4, 5)
    assert linearizable(h)


def test_a_cas_expecting_none_swaps_only_while_the_key_is_absent():
    h = HistoryBuilder()
    h.cas("x", None, "1", True, 0, 1)
    h.cas("x", None, "2", False, 2, 3)
    h.get("x", "1", 4, 5)
    assert linearizable(h)


def test_an_info_cas_may_take_effect_when_its_compare_holds():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.cas("x", "1", "2", None, 2)  # timed out
    h.get("x", "2", 5, 6)
    assert linearizable(h)


def test_a_delete_makes_the_key_absent():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.delete("x", 2, 3)
    h.get("x", None, 4, 5)
    h.cas("x", None, "2", True, 6, 7)
    assert linearizable(h)


def test_keys_are_independent_registers():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.get("y", None, 2, 3)
    h.get("x", "1", 2, 3)
    result = check(h.ops)
    assert result.ok is True
    assert result.keys_checked == 2


# --- Non-linearizable histories ---------------------------------------------------------------------


def test_a_read_of_a_value_never_written_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.get("x", "2", 2, 3)
    assert linearizable(h) is False


def test_a_stale_read_after_a_completed_write_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.put("x", "2", 2, 3)
    h.get("x", "1", 4, 5)
    assert linearizable(h) is False


def test_a_read_after_a_completed_write_may_not_see_the_initial_value():
    # Porcupine's second register example.
    h = HistoryBuilder()
    h.put("x", "200", 0, 10)
    h.get("x", "200", 10, 30)
    h.get("x", None, 40, 90)
    assert linearizable(h) is False


def test_a_read_may_not_see_the_old_value_after_another_read_saw_the_new_one():
    # The new-old inversion that separates atomic (linearizable) registers from regular ones.
    h = HistoryBuilder()
    h.put("x", "1", 0, 100, client="w")
    h.get("x", "1", 10, 20, client="a")
    h.get("x", None, 30, 40, client="b")
    assert linearizable(h) is False


def test_two_readers_that_see_concurrent_writes_in_opposite_orders_are_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 100, client="w1")
    h.put("x", "2", 0, 100, client="w2")
    h.get("x", "1", 10, 20, client="a")
    h.get("x", "2", 30, 40, client="a")
    h.get("x", "2", 10, 20, client="b")
    h.get("x", "1", 30, 40, client="b")
    assert linearizable(h) is False


def test_a_cas_that_swapped_from_the_wrong_value_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.cas("x", "3", "2", True, 2, 3)
    assert linearizable(h) is False


def test_a_cas_that_did_not_swap_although_the_value_matched_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.cas("x", "1", "2", False, 2, 3)
    assert linearizable(h) is False


def test_a_read_of_a_value_only_a_failed_write_wrote_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1, status="fail")
    h.get("x", "1", 2, 3)
    assert linearizable(h) is False


def test_a_read_of_a_deleted_value_is_not_linearizable():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.delete("x", 2, 3)
    h.get("x", "1", 4, 5)
    assert linearizable(h) is False


def test_an_info_write_cannot_take_effect_before_its_invocation():
    h = HistoryBuilder()
    h.get("x", "1", 0, 1)
    h.put("x", "1", 2)
    assert linearizable(h) is False


def test_an_info_write_takes_effect_at_most_once():
    h = HistoryBuilder()
    h.put("x", "1", 0)
    h.put("x", "2", 1, 2)
    h.get("x", "1", 3, 4)
    h.get("x", "2", 5, 6)
    h.get("x", "1", 7, 8)
    assert linearizable(h) is False


def test_a_failure_on_one_key_fails_the_history_and_names_only_that_key():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.get("x", "1", 2, 3)
    h.put("y", "1", 0, 1)
    h.get("y", "2", 2, 3)
    result = check(h.ops)
    assert result.ok is False
    assert [f.key for f in result.failures] == ["y"]
    assert result.keys_checked == 2


# --- The result ---------------------------------------------------------------------------------------


def test_check_history_checks_a_recorded_history_with_pending_operations_as_info():
    history = History()
    w = history.invoke("c1", "put", "x", 0.0, value=b"1")
    history.ok(w, 1.0)
    history.invoke("c2", "put", "x", 2.0, value=b"2")  # still pending
    r = history.invoke("c3", "get", "x", 3.0)
    history.ok(r, 4.0, read=b"2")
    assert check_history(history).ok is True


def test_check_accepts_any_iterable_of_operations():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    assert check(op for op in h.ops).ok is True


def test_a_linearizable_result_prints_as_one_summary_line():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    text = str(check(h.ops))
    assert text.startswith("Linearizable")
    assert "\n" not in text


def test_the_explanation_names_the_key_and_describes_the_window_operations():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.put("x", "2", 2, 3)
    stale = h.get("x", "1", 4, 5)
    result: CheckResult = check(h.ops)
    text = result.explain()
    assert "NOT linearizable" in text
    assert "key 'x'" in text
    for op in h.ops:
        assert op.describe() in text
    assert result.failure("x").stuck_at == stale
