"""The window reported for a failing key: small, sorted, itself a failing history, and to the point."""

from dataclasses import replace

from linearizability_histories import HistoryBuilder, campaign

from novacron.consensus.history import Operation
from novacron.consensus.linearizability import check


def inject_stale_read(ops: list[Operation]) -> tuple[list[Operation], Operation]:
    """Make one ok read return a value that a completed write had already overwritten before it began.

    Looks for ok writes ``old`` then ``new`` (``old`` returned before ``new`` was
    invoked) and an ok read invoked after ``new`` returned; values are unique, so
    reading ``old``'s value then is a stale read no linearization explains.
    """
    writes = [op for op in ops if op.status == "ok" and op.kind == "put"]
    reads = [op for op in ops if op.status == "ok" and op.kind == "get"]
    for read in reads[len(reads) // 2 :]:
        for new in writes:
            if new.key != read.key or new.complete >= read.invoke:
                continue
            for old in writes:
                if old.key == read.key and old.complete < new.invoke:
                    stale = replace(read, read=old.value)
                    return [stale if op.id == read.id else op for op in ops], stale
    raise AssertionError("no place for a stale read in this history")


def test_the_window_of_a_stale_read_is_the_write_the_overwrite_and_the_read():
    h = HistoryBuilder()
    h.get("x", None, 0, 1)
    old = h.put("x", "1", 2, 3)
    h.get("x", "1", 4, 5)
    new = h.put("x", "2", 6, 7)
    h.get("x", "2", 8, 9)
    stale = h.get("x", "1", 10, 11)
    h.put("x", "3", 12, 13)
    h.get("x", "3", 14, 15)
    failure = check(h.ops).failure("x")
    assert failure.window == [old, new, stale]
    assert failure.minimal


def test_the_window_of_a_read_of_a_value_never_written_is_that_read_alone():
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.get("x", "1", 2, 3)
    bad = h.get("x", "2", 4, 5)
    h.put("x", "3", 6, 7)
    assert check(h.ops).failure("x").window == [bad]


def test_a_cas_of_unknown_outcome_that_could_never_swap_explains_no_read():
    # Found by the property tests (Hypothesis): the failed cas saw "1"; the cas of unknown outcome
    # expected "0", which nobody wrote, so it never wrote "2" either. Kept as the failed cas's
    # explanation, it let the shrinker drop the put of "1" and blame the two cas ops, not the read.
    h = HistoryBuilder()
    h.cas("x", None, "0", False, 1, 1, client="c0")
    h.cas("x", "0", "2", None, 1, client="c0")
    h.put("x", "1", 0, 0, client="c1")
    bad = h.get("x", "never written", 3, 3, client="c0")
    h.get("x", "1", 0, 1, client="c2")
    h.get("x", "1", 0, 0, client="c1")
    assert check(h.ops).failure("x").window == [bad]


def test_the_window_keeps_a_writer_of_every_value_its_reads_saw():
    # Without the writer of "1", the stale read would shrink to "a read of a value never written".
    h = HistoryBuilder()
    h.put("x", "1", 0, 1)
    h.put("x", "2", 2, 3)
    h.get("x", "1", 4, 5)
    window = check(h.ops).failure("x").window
    assert any(op.kind == "put" and op.value == b"1" for op in window)


def test_a_500_op_history_with_one_injected_stale_read_reports_a_handful_of_ops_with_that_read():
    ops, stale = inject_stale_read(campaign(seed=3, operations=500, keys=2, clients=6))
    result = check(ops)
    assert result.ok is False
    assert len(result.failures) == 1
    window = result.failures[0].window
    assert stale in window
    assert len(window) <= 6


def test_the_window_is_itself_not_linearizable():
    ops, _ = inject_stale_read(campaign(seed=5, operations=500, keys=2, clients=6))
    window = check(ops).failures[0].window
    assert check(window).ok is False


def test_the_window_is_sorted_by_invocation():
    ops, _ = inject_stale_read(campaign(seed=8, operations=500, keys=1, clients=8))
    window = check(ops).failures[0].window
    assert window == sorted(window, key=lambda op: op.invoke)


def test_a_spent_shrinking_budget_still_reports_a_failing_window():
    ops, stale = inject_stale_read(campaign(seed=3, operations=500, keys=1, clients=6))
    result = check(ops, shrink_steps=50)
    failure = result.failures[0]
    assert not failure.minimal
    assert stale in failure.window
    assert check(failure.window).ok is False
    assert "shrinking budget spent" in result.explain()
