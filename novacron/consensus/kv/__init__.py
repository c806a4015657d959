"""The replicated key-value store: operations, the state machine, and its client."""

from .ops import (
    CompareAndSet,
    Delete,
    Get,
    Op,
    Put,
    Result,
    decode_op,
    decode_result,
    encode_op,
    encode_result,
)
from .store import KVStore

__all__ = [
    "CompareAndSet",
    "Delete",
    "Get",
    "KVStore",
    "Op",
    "Put",
    "Result",
    "decode_op",
    "decode_result",
    "encode_op",
    "encode_result",
]
