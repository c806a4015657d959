"""The runtime contract (clock, network, storage, randomness, identity).

Protocol code imports from here and from nothing runtime-specific; see
:mod:`novacron.runtime.contract` for the rules and why they exist.
"""

from .contract import (
    MAX_MESSAGE_BYTES,
    MAX_RECORD_BYTES,
    App,
    Cancellable,
    Clock,
    FutureLike,
    MessageHandler,
    Network,
    Runtime,
    Storage,
    Stream,
    StreamHandler,
    TaskLike,
    TransferHandler,
    WriteLog,
)
from .helpers import first_completed, node_scoped_id, wait_done, wait_for
from .messages import Message, MessageCodec, WireError, codec, encoded_size
from .types import (
    NodeInfo,
    Payload,
    RuntimeContractError,
    TransferError,
    TransferReport,
    VirtualPayload,
    payload_size,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_RECORD_BYTES",
    "App",
    "Cancellable",
    "Clock",
    "FutureLike",
    "Message",
    "MessageCodec",
    "MessageHandler",
    "Network",
    "NodeInfo",
    "Payload",
    "Runtime",
    "RuntimeContractError",
    "Storage",
    "Stream",
    "StreamHandler",
    "TaskLike",
    "TransferError",
    "TransferHandler",
    "TransferReport",
    "VirtualPayload",
    "WireError",
    "WriteLog",
    "codec",
    "encoded_size",
    "payload_size",
    "first_completed",
    "node_scoped_id",
    "wait_done",
    "wait_for",
]
