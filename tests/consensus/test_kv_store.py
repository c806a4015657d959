"""The key-value state machine: deterministic, and bad operations are answers, not crashes."""

from novacron.consensus.kv import (
    CompareAndSet,
    Delete,
    Get,
    KVStore,
    Put,
    decode_result,
    encode_op,
)


def run(store, op):
    return decode_result(store.apply(encode_op(op)))


def test_put_get_delete_round_trip():
    store = KVStore()
    assert run(store, Put("a", b"1")).value is None
    assert run(store, Get("a")).value == b"1"
    assert run(store, Put("a", b"2")).value == b"1"  # a put returns the previous value
    assert run(store, Delete("a")).value == b"2"
    assert run(store, Get("a")).value is None


def test_compare_and_set_swaps_only_from_the_expected_value():
    store = KVStore()
    assert run(store, CompareAndSet("k", None, b"x")).swapped  # None expects "absent"
    assert not run(store, CompareAndSet("k", None, b"y")).swapped
    result = run(store, CompareAndSet("k", b"z", b"y"))
    assert not result.swapped and result.value == b"x"
    assert run(store, CompareAndSet("k", b"x", b"y")).swapped
    assert store.data == {"k": b"y"}


def test_a_malformed_operation_is_an_error_result_and_changes_nothing():
    store = KVStore()
    run(store, Put("a", b"1"))
    result = decode_result(store.apply(b"\xc1garbage"))
    assert "not a key-value operation" in result.error
    assert store.data == {"a": b"1"}


def test_query_serves_reads_and_refuses_writes():
    store = KVStore()
    run(store, Put("a", b"1"))
    assert decode_result(store.query(encode_op(Get("a")))).value == b"1"
    assert "not read-only" in decode_result(store.query(encode_op(Put("a", b"2")))).error
    assert store.data == {"a": b"1"}


def test_snapshots_are_canonical_and_restore_the_state():
    one, two = KVStore(), KVStore()
    for key in "abc":
        run(one, Put(key, key.encode()))
    for key in "cba":
        run(two, Put(key, key.encode()))
    assert one.snapshot() == two.snapshot()  # same state, same bytes, whatever the order
    fresh = KVStore()
    fresh.restore(one.snapshot())
    assert fresh.data == one.data
