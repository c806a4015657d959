"""The replicated key-value store: a :class:`~novacron.consensus.api.StateMachine`."""

from __future__ import annotations

import msgspec

from .ops import CompareAndSet, Delete, Get, Put, Result, decode_op, encode_result


class KVStore:
    """A dict from str to bytes, changed only through :meth:`apply`.

    Deterministic by construction (no clock, no randomness, sorted
    snapshots), so replicas that apply the same operations agree byte for
    byte, which the simulation campaign checks by comparing snapshots.
    """

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def apply(self, op: bytes) -> bytes:
        try:
            decoded = decode_op(op)
        except ValueError as exc:
            return encode_result(Result(error=str(exc)))
        data = self.data
        if isinstance(decoded, Get):
            return encode_result(Result(value=data.get(decoded.key)))
        if isinstance(decoded, Put):
            previous = data.get(decoded.key)
            data[decoded.key] = decoded.value
            return encode_result(Result(value=previous))
        if isinstance(decoded, Delete):
            return encode_result(Result(value=data.pop(decoded.key, None)))
        assert isinstance(decoded, CompareAndSet)
        current = data.get(decoded.key)
        if current != decoded.expected:
            return encode_result(Result(value=current, swapped=False))
        data[decoded.key] = decoded.new
        return encode_result(Result(value=current, swapped=True))

    def query(self, op: bytes) -> bytes:
        try:
            decoded = decode_op(op)
        except ValueError as exc:
            return encode_result(Result(error=str(exc)))
        if not isinstance(decoded, Get):
            return encode_result(Result(error=f"{type(decoded).__name__} is not read-only"))
        return encode_result(Result(value=self.data.get(decoded.key)))

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(dict(sorted(self.data.items())))

    def restore(self, snapshot: bytes) -> None:
        self.data = msgspec.msgpack.decode(snapshot, type=dict[str, bytes])
