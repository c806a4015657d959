"""The key-value operations and their encoding (what a :class:`Command` carries)."""

from __future__ import annotations

from typing import Union

import msgspec


class Get(msgspec.Struct, tag="get", frozen=True, array_like=True):
    key: str


class Put(msgspec.Struct, tag="put", frozen=True, array_like=True):
    key: str
    value: bytes


class Delete(msgspec.Struct, tag="del", frozen=True, array_like=True):
    key: str


class CompareAndSet(msgspec.Struct, tag="cas", frozen=True, array_like=True):
    """Set ``key`` to ``new`` only if its value is ``expected`` (None: only if absent)."""

    key: str
    expected: bytes | None
    new: bytes


Op = Union[Get, Put, Delete, CompareAndSet]  # noqa: UP007


class Result(msgspec.Struct, frozen=True, array_like=True):
    """``value`` is what a get read (None: absent) or, for a put/delete, the previous value;
    ``swapped`` says whether a compare-and-set took effect; ``error`` names a bad operation."""

    value: bytes | None = None
    swapped: bool = False
    error: str = ""


_op_encoder = msgspec.msgpack.Encoder()
_op_decoder = msgspec.msgpack.Decoder(Op)
_result_decoder = msgspec.msgpack.Decoder(Result)


def encode_op(op: Op) -> bytes:
    return _op_encoder.encode(op)


def decode_op(data: bytes) -> Op:
    """Raises ``ValueError`` naming the problem for bytes that are not a key-value operation."""
    try:
        return _op_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a key-value operation ({len(data)} bytes): {exc}") from None


def encode_result(result: Result) -> bytes:
    return _op_encoder.encode(result)


def decode_result(data: bytes) -> Result:
    try:
        return _result_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a key-value result ({len(data)} bytes): {exc}") from None
