"""SQLiteStorage: the Storage contract's log and key-value semantics, and its durability."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from novacron.backends import SQLiteStorage


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStorage]:
    s = SQLiteStorage(tmp_path / "node.sqlite3")
    yield s
    s.close()


def sync(storage: SQLiteStorage) -> None:
    asyncio.run(storage.sync())


def test_file_is_in_wal_mode(store: SQLiteStorage) -> None:
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sync_fsyncs_the_write_ahead_log_once_per_new_commit(store, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.put("k", b"v")
    sync(store)
    assert synced == [f"{store.path}-wal"]  # the commit is durable once sync returns
    sync(store)
    assert len(synced) == 1  # nothing new: no second fsync
    store.append([b"entry"])
    sync(store)
    assert len(synced) == 2


def test_empty_log_starts_at_index_one(store: SQLiteStorage) -> None:
    assert (store.first_index, store.last_index) == (1, 0)
    assert store.entries(1) == []


def test_append_and_read_ranges(store: SQLiteStorage) -> None:
    assert store.append([b"a", b"b"]) == 2
    assert store.append([]) == 2
    assert store.append([b"c", bytearray(b"d"), memoryview(b"e")]) == 5
    assert store.entries(1) == [b"a", b"b", b"c", b"d", b"e"]
    assert store.entries(2, 4) == [b"b", b"c"]
    assert store.entries(6) == [], "from last_index + 1 is simply empty"
    assert store.entries(3, 3) == []
    assert all(type(e) is bytes for e in store.entries(1))


def test_truncate_drops_a_conflicting_suffix(store: SQLiteStorage) -> None:
    store.append([b"1", b"2", b"3", b"4"])
    store.truncate(3)
    assert store.last_index == 2 and store.entries(1) == [b"1", b"2"]
    store.truncate(3)  # last_index + 1: nothing to drop
    assert store.append([b"3'"]) == 3
    assert store.entries(1) == [b"1", b"2", b"3'"]
    store.truncate(1)
    assert (store.first_index, store.last_index) == (1, 0)


def test_compact_drops_a_prefix_and_moves_first_index(store: SQLiteStorage) -> None:
    store.append([b"1", b"2", b"3", b"4"])
    store.compact(3)
    assert (store.first_index, store.last_index) == (3, 4)
    assert store.entries(3) == [b"3", b"4"]
    store.compact(2)  # already compacted beyond: no-op
    assert store.first_index == 3
    store.compact(5)  # everything: the log is empty but keeps its position
    assert (store.first_index, store.last_index) == (5, 4)
    assert store.append([b"5"]) == 5
    assert store.entries(5) == [b"5"]


def test_bad_log_arguments_are_refused_with_a_reason(store: SQLiteStorage) -> None:
    store.append([b"1", b"2", b"3", b"4"])
    store.compact(3)
    with pytest.raises(ValueError, match="compacted"):
        store.entries(2)
    with pytest.raises(ValueError, match="beyond the tail"):
        store.entries(3, 7)
    with pytest.raises(ValueError, match="after end"):
        store.entries(4, 3)
    with pytest.raises(ValueError, match="below first_index"):
        store.truncate(2)
    with pytest.raises(ValueError, match="beyond the tail"):
        store.truncate(6)
    with pytest.raises(ValueError, match="last_index \\+ 1"):
        store.compact(6)
    with pytest.raises(TypeError, match="bytes"):
        store.append(["text"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of records"):
        store.append(b"one record")
    with pytest.raises(TypeError, match="int"):
        store.truncate("3")  # type: ignore[arg-type]
    assert (store.first_index, store.last_index) == (3, 4), "refusals change nothing"


def test_key_value_area(store: SQLiteStorage) -> None:
    assert store.get("missing") is None
    store.put("raft/term", b"3")
    store.put("raft/vote", b"n2")
    store.put("raft/term", b"4")
    store.put("ras", b"")
    store.put("zzz", bytearray(b"z"))
    assert store.get("raft/term") == b"4" and store.get("ras") == b""
    assert store.keys() == ["raft/term", "raft/vote", "ras", "zzz"]
    assert store.keys("raft/") == ["raft/term", "raft/vote"]
    assert store.keys("ra") == ["raft/term", "raft/vote", "ras"]
    assert store.keys("%") == [] and store.keys("_") == [], "no LIKE wildcards"
    store.delete("raft/vote")
    store.delete("never-there")
    assert store.keys("raft/") == ["raft/term"]
    with pytest.raises(TypeError, match="bytes"):
        store.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        store.put(b"k", b"v")  # type: ignore[arg-type]


def test_synced_writes_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    store = SQLiteStorage(path)
    store.append([b"1", b"2", b"3"])
    store.compact(2)
    store.put("k", b"v")
    sync(store)
    store.abandon()  # a crash right after the sync
    store = SQLiteStorage(path)
    assert (store.first_index, store.last_index) == (2, 3)
    assert store.entries(2) == [b"2", b"3"] and store.get("k") == b"v"
    store.close()


def test_unsynced_writes_are_lost_in_a_crash_but_visible_before(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    store = SQLiteStorage(path)
    store.append([b"durable"])
    store.put("a", b"1")
    sync(store)
    store.append([b"volatile"])
    store.put("a", b"2")
    store.put("b", b"new")
    assert store.entries(1) == [b"durable", b"volatile"] and store.get("a") == b"2"
    store.abandon()
    store = SQLiteStorage(path)
    assert store.entries(1) == [b"durable"]
    assert store.get("a") == b"1" and store.get("b") is None
    store.close()


def test_clean_close_commits(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite3"
    store = SQLiteStorage(path)
    store.put("k", b"v")
    store.close()
    assert SQLiteStorage(path).get("k") == b"v"


def test_closed_storage_refuses_use(store: SQLiteStorage) -> None:
    store.close()
    with pytest.raises(RuntimeError, match="closed"):
        store.get("k")


# --- the log against a trivially correct model -----------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.lists(st.binary(max_size=8), max_size=4)),
        st.tuples(st.just("truncate"), st.integers(0, 12)),
        st.tuples(st.just("compact"), st.integers(0, 12)),
        st.tuples(st.just("sync"), st.none()),
        st.tuples(st.just("crash"), st.none()),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_log_matches_a_model_across_syncs_and_crashes(tmp_path: Path, ops: list) -> None:
    path = tmp_path / f"model-{id(ops)}.sqlite3"
    path.unlink(missing_ok=True)
    store = SQLiteStorage(path)
    # model: first index and the records; `durable` is the state as of the last sync
    first, records = 1, []
    durable = (first, list(records))
    try:
        for op, arg in ops:
            last = first + len(records) - 1
            if op == "append":
                assert store.append(arg) == last + len(arg)
                records += arg
            elif op == "truncate":
                if first <= arg <= last + 1:
                    store.truncate(arg)
                    del records[arg - first :]
                else:
                    with pytest.raises(ValueError):
                        store.truncate(arg)
            elif op == "compact":
                if arg > last + 1:
                    with pytest.raises(ValueError):
                        store.compact(arg)
                else:
                    store.compact(arg)
                    if arg > first:
                        del records[: arg - first]
                        first = arg
            elif op == "sync":
                sync(store)
                durable = (first, list(records))
            else:
                store.abandon()
                store = SQLiteStorage(path)
                first, records = durable[0], list(durable[1])
            assert (store.first_index, store.last_index) == (first, first + len(records) - 1)
            assert store.entries(first) == records
    finally:
        store.close()
