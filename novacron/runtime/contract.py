"""The clock-and-network contract: everything protocol code may touch.

Protocol code (everything under ``novacron/``) is written against the
:class:`Runtime` protocol below and nothing else, so that the same code runs
on the SimPy simulator (``novacron.sim``) and on the asyncio backend
(``novacron.backends``). These are :class:`typing.Protocol` classes: a
runtime satisfies them structurally, and tests check both runtimes against
the same behavioural suite (``tests/contract``).

Why each rule exists:

* Time comes only from :meth:`Clock.now` / :meth:`Clock.call_later`, so the
  simulator can run virtual time and replay a seed bit for bit.
* Randomness comes only from :attr:`Runtime.random`, seeded by the runtime,
  for the same reason.
* Messages are typed (:class:`novacron.runtime.Message`); the simulator
  passes them by reference and charges the link for their encoded size, the
  real backend encodes them into frames.
* Storage writes are volatile until :meth:`Storage.sync` completes: a crash
  loses what was not synced, in the simulator exactly as on a real disk.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from .messages import Message
from .types import NodeInfo, Payload, TransferReport

T = TypeVar("T")

#: The largest encoded message ``send`` accepts; bigger payloads go by transfer.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: The largest data a stream record may carry (``Stream.send``), on every runtime.
MAX_RECORD_BYTES = 64 * 1024 * 1024
M = TypeVar("M", bound=Message)

#: A message handler: called with the sender's node id and the message.
MessageHandler = Callable[[str, M], None]
#: A transfer handler: called with the sender's node id and the payload.
TransferHandler = Callable[[str, Payload], None]
#: A stream-record handler: sender's node id, the record's header and its data.
StreamHandler = Callable[[str, M, Payload], None]
#: Where a stream record's data should be received: ``(src, header, length) -> memoryview | None``.
Placement = Callable[[str, M, int], "memoryview | None"]


@runtime_checkable
class Cancellable(Protocol):
    """What :meth:`Clock.call_later` returns: a timer that can be cancelled."""

    def cancel(self) -> None:
        """Stop the callback from running; a no-op if it already ran."""
        ...

    def cancelled(self) -> bool: ...


@runtime_checkable
class FutureLike(Protocol[T]):
    """A one-shot result, awaitable from protocol coroutines.

    The same subset of :class:`asyncio.Future` on both runtimes.
    """

    def done(self) -> bool: ...

    def cancelled(self) -> bool: ...

    def result(self) -> T: ...

    def exception(self) -> BaseException | None: ...

    def set_result(self, result: T) -> None: ...

    def set_exception(self, exc: BaseException) -> None: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[Any], None]) -> None: ...

    def __await__(self) -> Any: ...


@runtime_checkable
class TaskLike(FutureLike[T], Protocol[T]):
    """A spawned coroutine: a future that completes with the coroutine."""


class Clock(Protocol):
    """Time as the runtime defines it (virtual in the simulator)."""

    def now(self) -> float:
        """Seconds since the runtime's epoch; never goes backwards on one node."""
        ...

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Cancellable:
        """Run ``fn(*args)`` after ``delay`` seconds (>= 0); returns a cancellable handle.

        Never early: when ``fn`` runs, :meth:`now` has advanced by at least ``delay`` (on a
        real node it may be late, by however busy its loop is)."""
        ...

    def sleep(self, delay: float) -> Awaitable[None]:
        """Await to pause the calling coroutine for ``delay`` seconds (never fewer, on :meth:`now`)."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, T]) -> TaskLike[T]:
        """Run a coroutine concurrently; its exceptions are logged if never awaited."""
        ...

    def create_future(self) -> FutureLike[Any]:
        """A future bound to this runtime (e.g. to await a reply message)."""
        ...

    def compute(self, seconds: float) -> Awaitable[float]:
        """Account for ``seconds`` of CPU work that protocol code just did.

        In the simulator the work itself takes no virtual time, so protocol
        code that compresses, hashes or encodes says what it would cost
        (from a calibrated cost model) and the node's clock advances by it,
        after waiting for a free core if the topology gives the node a core
        count (:mod:`novacron.sim.cpu`); on the real backend the work
        already took real time and this returns at once. Returns the seconds
        the work waited for a core (0.0 where nothing waits).
        """
        ...

    def offload(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run ``fn(*args)`` off the node's event loop where the runtime can, and return its result.

        For self-contained CPU work on buffers (copying pages, checksums, compression) that
        would otherwise stall every other protocol on the node: the real backend runs it on a
        worker thread (numpy, ISA-L/zlib, zstd and lz4 release the GIL, so it uses another
        core); the simulator runs it at once, in no virtual time (charge its modelled cost with
        :meth:`compute`). ``fn`` must not touch state the node's other code uses meanwhile.
        """
        ...


@runtime_checkable
class Storage(Protocol):
    """A node's durable state: an append-only log and a small key-value area.

    Writes are visible to the node at once but survive a crash only once a
    later :meth:`sync` has completed, as with a file and ``fsync``. Log
    indexes start at 1; :attr:`first_index` moves up when the log is
    compacted (Raft snapshots), and ``last_index == first_index - 1`` means
    the log is empty. Values and records are bytes. Out-of-range indexes are
    a ``ValueError`` on every runtime (tests/contract checks them alike): a
    caller asking for those has lost track of the log.
    """

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str = "") -> list[str]: ...

    @property
    def first_index(self) -> int: ...

    @property
    def last_index(self) -> int: ...

    def append(self, records: Sequence[bytes]) -> int:
        """Append records; returns the index of the last one appended."""
        ...

    def entries(self, start: int, end: int | None = None) -> list[bytes]:
        """Records with ``start <= index < end`` (``end`` defaults to ``last_index + 1``).

        ``start`` below ``first_index``, ``end`` beyond ``last_index + 1`` or
        ``start > end`` is a ``ValueError``.
        """
        ...

    def truncate(self, from_index: int) -> None:
        """Drop the records at ``from_index`` and after (a conflicting suffix).

        ``from_index`` must be within ``[first_index, last_index + 1]``.
        """
        ...

    def compact(self, upto_index: int) -> None:
        """Drop the records before ``upto_index`` (covered by a snapshot).

        At or below ``first_index`` it is a no-op; beyond ``last_index + 1`` a ``ValueError``.
        """
        ...

    def reset(self, first_index: int) -> None:
        """Drop the whole log; it restarts empty at ``first_index`` (a snapshot was installed)."""
        ...

    def sync(self) -> Awaitable[None]:
        """Make every write so far durable; await it before acting on them."""
        ...


class WriteLog(Protocol):
    """How a sender learns cheaply whether data it sends as ``volatile`` (see
    :meth:`Stream.send`) was written meanwhile: the writer keeps it (a running guest's dirty
    tracking), and a sender that can trust it skips checking the bytes again."""

    def version(self, start: int, stop: int) -> int | None:
        """A number that changes whenever bytes ``start:stop`` of the data are written, or
        ``None`` while a write there may be in progress (the sender then checks the bytes)."""
        ...


@runtime_checkable
class Stream(Protocol):
    """One congestion-controlled, ordered, reliable channel to a peer (a TCP connection).

    The building block of AMST (:mod:`novacron.transport`), which schedules
    chunks over several streams itself; :meth:`Network.transfer` is the
    simple all-in-one alternative. A stream carries *records*: a typed
    header (a :class:`Message`) plus raw bytes, delivered in order to the
    peer's :meth:`Network.on_stream` handler for that header type.
    """

    @property
    def peer(self) -> str: ...

    @property
    def congestion(self) -> str:
        """The congestion control actually in use."""
        ...

    def send(
        self, header: Message, data: Payload = b"", *, volatile: bool | WriteLog = False
    ) -> Awaitable[None]:
        """Write one record; completes when the stream can take the next one.

        Completion means the bytes left this node, not that the peer
        processed them: protocols acknowledge with messages. One send at a
        time per stream; ``data`` at most :data:`MAX_RECORD_BYTES`. Raises
        :class:`TransferError` once the stream has failed (peer down,
        connection reset, no progress for the stream timeout); a failed
        stream stays failed and counts as :attr:`closed`.

        Records on one stream arrive in order and intact (the real backend
        checksums each record from the sender's memory to the receiver's;
        a corrupt record fails the stream); records and messages are not
        ordered relative to each other (they travel on different
        connections): a message sent after a record may be handled first.

        ``volatile=True`` lets the caller go on writing ``data`` during the
        send (a running guest's memory, sent without a snapshot of its own):
        each part of the record then arrives as one of the versions it held
        meanwhile, with no consistency across parts, and the record still
        passes the stream's integrity check. Without it, data changed under
        a send is a corrupt record to the real backend. A :class:`WriteLog`
        instead of ``True`` lets the sender skip re-reading parts the log
        says nobody wrote (a log that lies makes the record fail its check,
        never arrive wrong).
        """
        ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called or the stream failed."""
        ...


class Network(Protocol):
    """Small typed messages (best effort), streams and bulk transfers to peers."""

    def send(self, dst: str, message: Message) -> None:
        """Send a small message. Best effort: it may be lost, delayed,
        duplicated or reordered when the network says so; never raises for
        an unreachable peer (protocols use timeouts, as on a real network).
        A message whose encoding exceeds :data:`MAX_MESSAGE_BYTES` is a
        ``ValueError`` (use a transfer); sending to oneself delivers locally."""
        ...

    def on_message(self, message_type: type[M], handler: MessageHandler[M]) -> None:
        """Route received messages of ``message_type`` to ``handler``.

        One handler per type; registering again replaces it. Messages of a
        type nobody handles are dropped and counted.
        """
        ...

    def transfer(
        self,
        dst: str,
        payload: Payload,
        *,
        streams: int = 1,
        congestion: str | None = None,
        tag: str = "",
    ) -> Awaitable[TransferReport]:
        """Move a large payload to ``dst`` over ``streams`` parallel streams.

        Completes when the receiver holds the whole payload (checked end to
        end) and returns a :class:`TransferReport`; raises
        :class:`TransferError` if the peer cannot be reached or a stream
        fails. ``congestion`` names the congestion control (``cubic``,
        ``bbr``, ``reno``); ``None`` means the runtime's default.
        """
        ...

    def open_stream(self, dst: str, *, congestion: str | None = None) -> Awaitable[Stream]:
        """Connect one stream to ``dst``; raises :class:`TransferError` if it cannot."""
        ...

    def on_stream(
        self, header_type: type[M], handler: StreamHandler[M], *, placement: Placement[M] | None = None
    ) -> None:
        """Route stream records whose header is a ``header_type`` to ``handler``.

        The handler gets ``(src, header, data)``; ``data`` as for :meth:`on_transfer`.
        ``placement(src, header, length)``, when given, may return a writable
        memoryview of exactly ``length`` bytes where the record's data should
        land (zero-copy receive, e.g. straight into a reassembly buffer); the
        handler then gets a read-only view of that same memory. Return None
        to let the runtime use its own buffer. A record that fails its check
        may have been partly written there before it was rejected.
        """
        ...

    def on_transfer(self, tag: str, handler: TransferHandler) -> None:
        """Receive completed transfers sent with ``tag``.

        The handler gets the payload as a read-only bytes-like object (a
        ``memoryview``: zero-copy on the real backend) or, in the simulator,
        the :class:`VirtualPayload` that was sent. Copy it with ``bytes()``
        to keep it beyond the handler.
        """
        ...


@runtime_checkable
class Runtime(Clock, Network, Protocol):
    """Everything a protocol running on one node may use."""

    @property
    def node_id(self) -> str: ...

    @property
    def info(self) -> NodeInfo:
        """This node's identity and topology labels (region, zone)."""
        ...

    @property
    def peers(self) -> tuple[str, ...]:
        """The other nodes this node knows of, in a stable order."""
        ...

    def peer_info(self, node_id: str) -> NodeInfo: ...

    @property
    def storage(self) -> Storage: ...

    @property
    def random(self) -> random.Random:
        """This node's seeded generator; the only source of randomness."""
        ...

    @property
    def boot_id(self) -> str:
        """Tells this incarnation of the node from its others: a restarted node has a new one.

        Ids a protocol numbers from 1 (transfers, migrations, clients) restart with the node,
        while peers may still remember the old ones and take a new transfer for a finished
        one; :func:`~novacron.runtime.node_scoped_id` puts this token in them. The simulator
        gives a node's first incarnation ``""`` (ids stay short and unchanged when nothing
        restarts) and each later one its number; the real backend draws a random token when
        the node starts.
        """
        ...


#: Protocol code is packaged as an *app*: a callable that receives the
#: node's runtime, registers handlers and spawns tasks. A runtime calls it on
#: every (re)start of the node; whatever it built is dropped on a crash.
App = Callable[[Runtime], Any]
