"""An epoch's view of the node's runtime: its own messages, its own storage namespace.

Raft and PBFT are written against the runtime contract and assume they own
the node; the adaptive host runs one of them per epoch, so each gets a view:

* clock, randomness and identity are the node's own;
* ``send`` wraps every message in an :class:`~.messages.EpochEnvelope` (client
  replies excepted: clients know nothing of epochs), and ``on_message``
  registrations stay local to the view; the host dispatches envelopes by epoch;
* storage is a namespace ``epoch/<n>/`` of the node's key-value area, *including
  the log*: an epoch's log is kept in kv records (:class:`EpochStorage`), so a
  switch never has to reset the real log, and a crash anywhere in a switch
  leaves every epoch's state either intact or absent, never mixed;
* once the epoch is retired (:meth:`EpochRuntime.close`) the view drops sends
  and timer callbacks: a stopped instance that is still unwinding (a PBFT batch
  half executed) cannot reach the network or wake itself up again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import msgspec

from novacron.runtime import Message, Runtime, Storage, codec

from ..api import ClientReply
from .messages import RESERVED_CLIENT, EpochEnvelope

_meta = msgspec.msgpack.Decoder(tuple[int, int])


def epoch_prefix(epoch: int) -> str:
    return f"epoch/{epoch:08d}/"


class EpochStorage:
    """A :class:`~novacron.runtime.Storage` inside ``prefix``: kv under ``kv/``, the log as
    records ``log/<index>`` plus ``log/meta`` = (first_index, last_index).

    Records are written before the meta that makes them visible, and dropped after it, so
    whatever prefix of the writes a crash keeps, the meta describes records that exist.
    Once :attr:`closed` (the epoch ended) writes are ignored: an instance still unwinding
    after its switch must not persist anything taken after it (a Raft compaction of the
    frozen state would hide the switch command from a replay after a crash).
    """

    def __init__(self, storage: Storage, prefix: str) -> None:
        self._s = storage
        self.closed = False
        self._kv = prefix + "kv/"
        self._log = prefix + "log/"
        raw = storage.get(self._log + "meta")
        self._first, self._last = _meta.decode(raw) if raw is not None else (1, 0)

    # -- key-value ----------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self._s.get(self._kv + key)

    def put(self, key: str, value: bytes) -> None:
        self._put(self._kv + key, value)

    def delete(self, key: str) -> None:
        self._delete(self._kv + key)

    def _put(self, key: str, value: bytes) -> None:
        if not self.closed:
            self._s.put(key, value)

    def _delete(self, key: str) -> None:
        if not self.closed:
            self._s.delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        n = len(self._kv)
        return [k[n:] for k in self._s.keys(self._kv + prefix)]

    # -- log ----------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self._first

    @property
    def last_index(self) -> int:
        return self._last

    def _key(self, index: int) -> str:
        return f"{self._log}{index:020d}"

    def _set_meta(self, first: int, last: int) -> None:
        self._first, self._last = first, last
        self._put(self._log + "meta", msgspec.msgpack.encode((first, last)))

    def append(self, records: Sequence[bytes]) -> int:
        if isinstance(records, (bytes, bytearray, memoryview)):
            raise TypeError("append() takes a sequence of records, not a single bytes object")
        index = self._last
        for record in records:
            index += 1
            self._put(self._key(index), bytes(record))
        if index != self._last:
            self._set_meta(self._first, index)
        return self._last

    def entries(self, start: int, end: int | None = None) -> list[bytes]:
        if end is None:
            end = self._last + 1
        if start < self._first or end > self._last + 1 or start > end:
            raise ValueError(f"entries({start}, {end}) outside [{self._first}, {self._last + 1}]")
        out = []
        for index in range(start, end):
            record = self._s.get(self._key(index))
            assert record is not None, f"log record {index} missing under {self._log}"
            out.append(record)
        return out

    def truncate(self, from_index: int) -> None:
        if not self._first <= from_index <= self._last + 1:
            raise ValueError(f"truncate({from_index}) outside [{self._first}, {self._last + 1}]")
        last = self._last
        self._set_meta(self._first, from_index - 1)
        for index in range(from_index, last + 1):
            self._delete(self._key(index))

    def compact(self, upto_index: int) -> None:
        if upto_index > self._last + 1:
            raise ValueError(f"compact({upto_index}) beyond last_index + 1 ({self._last + 1})")
        if upto_index <= self._first:
            return
        first = self._first
        self._set_meta(upto_index, self._last)
        for index in range(first, upto_index):
            self._delete(self._key(index))

    def reset(self, first_index: int) -> None:
        if first_index < 1:
            raise ValueError(f"reset({first_index}): log indexes start at 1")
        first, last = self._first, self._last
        self._set_meta(first_index, first_index - 1)
        for index in range(first, last + 1):
            self._delete(self._key(index))

    def sync(self) -> Any:
        return self._s.sync()


def drop_epoch(storage: Storage, epoch: int) -> None:
    """Forget everything an epoch stored (it ended; the next one's start record covers it)."""
    for key in storage.keys(epoch_prefix(epoch)):
        storage.delete(key)


class EpochRuntime:
    """The runtime one epoch's protocol instance sees (see the module docstring)."""

    def __init__(self, rt: Runtime, epoch: int) -> None:
        self._rt = rt
        self.epoch = epoch
        self.closed = False
        self.handlers: dict[type, Callable[[str, Any], None]] = {}
        self._storage = EpochStorage(rt.storage, epoch_prefix(epoch))

    def close(self) -> None:
        self.closed = True
        self._storage.closed = True

    # -- identity, clock, randomness: the node's ------------------------------
    @property
    def node_id(self) -> str:
        return self._rt.node_id

    @property
    def info(self) -> Any:
        return self._rt.info

    @property
    def peers(self) -> tuple[str, ...]:
        return self._rt.peers

    def peer_info(self, node_id: str) -> Any:
        return self._rt.peer_info(node_id)

    @property
    def random(self) -> random.Random:
        return self._rt.random

    @property
    def boot_id(self) -> str:
        return self._rt.boot_id

    @property
    def storage(self) -> EpochStorage:
        return self._storage

    def now(self) -> float:
        return self._rt.now()

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        return self._rt.call_later(delay, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if not self.closed:
            fn(*args)

    def sleep(self, delay: float) -> Any:
        return self._rt.sleep(delay)

    def compute(self, seconds: float) -> Any:
        return self._rt.compute(seconds)

    def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._rt.offload(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self._rt.spawn(coro)

    def create_future(self) -> Any:
        return self._rt.create_future()

    # -- network ----------------------------------------------------------------
    def send(self, dst: str, message: Message) -> None:
        if self.closed:
            return
        if isinstance(message, ClientReply):
            if not message.client.startswith(RESERVED_CLIENT):  # the host's own: nobody to tell
                self._rt.send(dst, message)
            return
        self._rt.send(dst, EpochEnvelope(self.epoch, codec.encode(message)))

    def on_message(self, message_type: type, handler: Callable[[str, Any], None]) -> None:
        self.handlers[message_type] = handler

    def handler_for(self, message: Message) -> Callable[[str, Any], None] | None:
        for cls in type(message).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def deliver(self, src: str, message: Message) -> bool:
        """Hand a message to the instance's handler; False if it has none (or the epoch ended)."""
        handler = None if self.closed else self.handler_for(message)
        if handler is None:
            return False
        handler(src, message)
        return True

    def __getattr__(self, name: str) -> Any:  # transfers and streams: the node's own
        return getattr(self._rt, name)
