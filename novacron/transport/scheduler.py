"""Which chunk goes on which stream: AMST's scheduling state machine, with no I/O.

Chunks wait in one shared queue and every stream pulls the next one when
its previous send completes (*work stealing*: a fast stream simply takes
more chunks, a slow one fewer, and nothing is assigned up front). When the
queue runs dry while chunks are still in flight, an idle stream (all its own
chunks acknowledged) re-sends a chunk that is in flight elsewhere, not yet
duplicated, and *late* (the *endgame*, as in BitTorrent): a straggling stream
can no longer hold up the tail, and the receiver ignores whichever copy
arrives second. Late means in flight for longer than ``straggler_factor``
times the slowest delivery (send to acknowledgement) of the transfer so far,
counted as at least ``min_delivery`` (the host's clock may tick in milliseconds).
Copying every chunk still in flight instead, as soon as a stream fell idle,
duplicated a fifth of all chunks when live migration sent 32 MiB batches over
loopback: there, a chunk in flight is nearly always about to arrive, and each
copy costs both ends a full chunk of CPU.

Time comes in with the events (``now``), as etcd-raft's ticks do: the
scheduler keeps no clock, and :meth:`endgame_at` tells the host when a chunk
will turn late so that it can wake an idle stream then.

Chunks count as delivered when the receiver acknowledges them. When a
stream fails, every chunk it carried that has not been acknowledged goes
back to the front of the queue, so the remaining streams finish the work.

Like etcd-raft's core, this class is fed events (``next_for``,
``acked_chunk``, ``stream_failed``) by the transport and decides; it never
touches the network, so it is tested exhaustively by feeding it events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class StreamProgress:
    """What one stream has done in this transfer."""

    chunks_sent: int = 0
    bytes_sent: int = 0
    duplicates_sent: int = 0
    unacked: set[int] = field(default_factory=set)


#: A chunk in flight this many times longer than the slowest delivery so far is late.
STRAGGLER_FACTOR = 2.0
#: Deliveries count as taking at least this long: a clock that ticks coarsely (a runtime's may;
#: uvloop's own counts milliseconds) measures a fast delivery as 0, which would make every chunk in
#: flight late at the next tick, and at memory speed a 512 KiB chunk's delivery is mostly
#: scheduling noise anyway: a copy is worth making only when a stream is stuck for longer.
MIN_DELIVERY = 0.001


class ChunkScheduler:
    def __init__(
        self,
        chunk_sizes: list[int],
        *,
        endgame: bool = True,
        straggler_factor: float = STRAGGLER_FACTOR,
        min_delivery: float = MIN_DELIVERY,
    ) -> None:
        if straggler_factor < 1.0:
            raise ValueError(f"straggler_factor must be >= 1, got {straggler_factor}")
        self.sizes = chunk_sizes
        self.endgame = endgame
        self.straggler_factor = straggler_factor
        self.min_delivery = min_delivery
        self._queue: deque[int] = deque(range(len(chunk_sizes)))
        self._acked: set[int] = set()
        self._in_flight: dict[int, set[int]] = {}  # chunk -> streams carrying it (oldest first)
        self._sent_at: dict[int, float] = {}  # chunk -> when its first copy in flight was sent
        self._duplicated: set[int] = set()
        #: the longest send-to-acknowledgement time of a chunk sent once (None: none yet)
        self.slowest_delivery: float | None = None
        self.streams: dict[int, StreamProgress] = {}

    # -- queries -------------------------------------------------------------
    @property
    def total(self) -> int:
        return len(self.sizes)

    @property
    def done(self) -> bool:
        return len(self._acked) == len(self.sizes)

    @property
    def acked(self) -> int:
        return len(self._acked)

    @property
    def queue_empty(self) -> bool:
        return not self._queue

    def missing(self) -> list[int]:
        return [i for i in range(len(self.sizes)) if i not in self._acked]

    # -- events --------------------------------------------------------------
    def next_for(self, stream: int, now: float = 0.0) -> int | None:
        """The chunk ``stream`` should send now (at time ``now``), or None if it has nothing
        useful to do."""
        progress = self.streams.setdefault(stream, StreamProgress())
        while self._queue:
            chunk = self._queue.popleft()
            if chunk not in self._acked:
                self._sent_at[chunk] = now
                return self._assign(chunk, stream, progress, duplicate=False)
        if not self.endgame or progress.unacked:
            return None
        # Endgame: help the oldest late chunk that no one else duplicates. Only a stream
        # whose own chunks have all been acknowledged helps: its pipe is empty, so the copy
        # leaves at once. (A stream whose last chunks still sit in its socket buffer would
        # only queue copies behind them: with deep buffers that duplicated up to every chunk
        # in flight, megabytes per stream.)
        for chunk in self._helpable(stream):
            if now >= self._late_at(chunk):
                self._duplicated.add(chunk)
                return self._assign(chunk, stream, progress, duplicate=True)
        return None

    def endgame_at(self, stream: int) -> float | None:
        """When ``stream``, idle now, could next help with a late chunk (None: not before
        some other event, an acknowledgement or a failure, changes the picture)."""
        progress = self.streams.get(stream)
        busy = self._queue or (progress is not None and progress.unacked)
        if not self.endgame or busy or self.slowest_delivery is None:
            return None
        return min((self._late_at(chunk) for chunk in self._helpable(stream)), default=None)

    def _helpable(self, stream: int) -> list[int]:
        return [
            chunk
            for chunk, carriers in self._in_flight.items()
            if chunk not in self._duplicated and stream not in carriers
        ]

    def _late_at(self, chunk: int) -> float:
        if self.slowest_delivery is None:
            return float("inf")  # no delivery seen yet: nothing to call late
        pace = max(self.slowest_delivery, self.min_delivery)
        return self._sent_at.get(chunk, 0.0) + self.straggler_factor * pace

    def _assign(self, chunk: int, stream: int, progress: StreamProgress, *, duplicate: bool) -> int:
        self._in_flight.setdefault(chunk, set()).add(stream)
        progress.unacked.add(chunk)
        progress.chunks_sent += 1
        progress.bytes_sent += self.sizes[chunk]
        progress.duplicates_sent += int(duplicate)
        return chunk

    def acked_chunk(self, chunk: int, now: float = 0.0) -> bool:
        """The receiver holds ``chunk`` (acknowledged at ``now``); returns False for an ack
        seen before (or bogus)."""
        if chunk in self._acked or not 0 <= chunk < len(self.sizes):
            return False
        self._acked.add(chunk)
        sent_at = self._sent_at.pop(chunk, None)
        if sent_at is not None and chunk in self._in_flight and chunk not in self._duplicated:
            # (a duplicated chunk's time is a straggler's: it would make every chunk look punctual)
            delivery = max(0.0, now - sent_at)
            if self.slowest_delivery is None or delivery > self.slowest_delivery:
                self.slowest_delivery = delivery
        for stream in self._in_flight.pop(chunk, ()):
            self.streams[stream].unacked.discard(chunk)
        return True

    def stream_failed(self, stream: int) -> list[int]:
        """Requeue (at the front) what ``stream`` carried that was not acknowledged."""
        progress = self.streams.get(stream)
        if progress is None:
            return []
        lost = sorted(progress.unacked)
        progress.unacked.clear()
        for chunk in lost:
            carriers = self._in_flight.get(chunk)
            if carriers is not None:
                carriers.discard(stream)
                self._duplicated.discard(chunk)  # another stream may help with it again
                if not carriers:
                    del self._in_flight[chunk]
        for chunk in reversed(lost):
            if chunk not in self._acked and chunk not in self._in_flight:
                self._queue.appendleft(chunk)
        return lost

    def restart(self) -> None:
        """The receiver lost everything (it restarted): send every chunk again."""
        self._acked.clear()
        self._in_flight.clear()
        self._sent_at.clear()
        self._duplicated.clear()
        for progress in self.streams.values():
            progress.unacked.clear()
        self._queue = deque(range(len(self.sizes)))

    def requeue_missing(self, chunks: list[int]) -> None:
        """The receiver reports these missing: send them again.

        The receiver is the authority, so this overrides earlier acks too (a
        receiver that restarted lost chunks it had acknowledged).
        """
        for chunk in chunks:
            if not 0 <= chunk < len(self.sizes) or chunk in self._queue:
                continue
            self._acked.discard(chunk)
            for stream in self._in_flight.pop(chunk, ()):
                self.streams[stream].unacked.discard(chunk)
            self._duplicated.discard(chunk)
            self._queue.append(chunk)
