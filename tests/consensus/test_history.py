"""Histories record invocations and outcomes, and refuse to complete an operation twice."""

import pytest

from novacron.consensus import History


def test_operations_carry_their_outcome():
    h = History()
    put = h.invoke("c1", "put", "k", 1.0, value=b"v")
    get = h.invoke("c2", "get", "k", 1.5)
    lost = h.invoke("c3", "cas", "k", 1.6, expected=b"v", value=b"w")
    h.ok(put, 2.0)
    h.ok(get, 2.5, read=b"v")
    h.info(lost)
    ops = h.operations
    assert [op.status for op in ops] == ["ok", "ok", "info"]
    assert ops[1].read == b"v" and ops[2].complete is None
    assert "cas('k', b'v' -> b'w')" in ops[2].describe()


def test_an_operation_completes_once():
    h = History()
    op = h.invoke("c1", "get", "k", 0.0)
    h.ok(op, 1.0, read=None)
    with pytest.raises(ValueError, match="already completed"):
        h.fail(op, 2.0)


def test_a_history_is_a_dataframe_for_notebooks():
    h = History()
    h.ok(h.invoke("c1", "put", "k", 0.0, value=b"v"), 1.0)
    frame = h.to_dataframe()
    assert list(frame["kind"]) == ["put"] and list(frame["status"]) == ["ok"]
