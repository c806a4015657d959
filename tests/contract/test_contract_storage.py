"""Storage edge semantics, alike on both runtimes (so Raft behaves the same on each)."""

import pytest

from novacron.runtime import Storage


def run_storage(harness, fn):
    harness.start(["n0"])

    async def scenario(rt):
        return fn(rt.storage)

    return harness.run("n0", scenario)


def test_storage_satisfies_the_protocol(harness):
    assert run_storage(harness, lambda s: isinstance(s, Storage))


def test_log_bounds_and_reads(harness):
    def check(s):
        assert (s.first_index, s.last_index) == (1, 0)
        assert s.append([b"a", b"b", b"c"]) == 3
        assert s.entries(2) == [b"b", b"c"]
        assert s.entries(1, 2) == [b"a"]
        assert s.entries(4) == []
        return True

    assert run_storage(harness, check)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.entries(1, 10),  # end beyond the tail
        lambda s: s.entries(3, 2),  # start after end
        lambda s: s.truncate(10),  # beyond last_index + 1
        lambda s: s.compact(10),  # beyond last_index + 1
        lambda s: s.reset(0),  # indexes start at 1
    ],
    ids=["entries-end", "entries-order", "truncate", "compact", "reset"],
)
def test_out_of_range_log_operations_are_value_errors(harness, call):
    def check(s):
        s.append([b"a", b"b", b"c"])
        with pytest.raises(ValueError):
            call(s)
        return True

    assert run_storage(harness, check)


def test_compaction_then_reads_below_first_index_fail_and_recompaction_is_a_no_op(harness):
    def check(s):
        s.append([b"a", b"b", b"c"])
        s.compact(3)
        s.compact(2)  # already compacted: no-op
        assert (s.first_index, s.last_index) == (3, 3)
        with pytest.raises(ValueError):
            s.entries(2)
        with pytest.raises(ValueError):
            s.truncate(2)
        return s.entries(3)

    assert run_storage(harness, check) == [b"c"]


def test_reset_restarts_the_log_after_a_snapshot(harness):
    def check(s):
        s.append([b"a", b"b"])
        s.reset(100)
        assert (s.first_index, s.last_index) == (100, 99)
        assert s.append([b"x"]) == 100
        return s.entries(100)

    assert run_storage(harness, check) == [b"x"]


def test_kv_area(harness):
    def check(s):
        s.put("a/1", b"x")
        s.put("a/2", b"y")
        s.put("b", b"z")
        s.delete("a/2")
        s.delete("never-there")
        with pytest.raises(TypeError):
            s.put("k", "not bytes")
        return s.keys("a/"), s.get("a/1"), s.get("a/2")

    assert run_storage(harness, check) == (["a/1"], b"x", None)
