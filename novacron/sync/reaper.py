"""Tombstone reaping: forgetting deleted keys without bringing their values back.

A delete leaves a tombstone, so that the delete wins over the values it read wherever they still
are (:mod:`.versions`). Kept for ever, tombstones grow the map with every key ever deleted (VM
records, sessions...). Dropping one is safe once no replica can hold, or receive, a value it
replaced; so a replica that has held a tombstone for ``tombstone_grace`` seconds asks every other
replica of the group whether it holds exactly the same state, durably (:class:`ReapAsk`). Only if
all say so (:class:`ReapHave`) does it tell them to forget the key (:class:`Reap`), and each
forgets it only if its state is still that tombstone (a write since then keeps the key).

* Every replica has the tombstone: no replica holds a replaced value, and none can get one back
  from another replica's disk, because the answers come after the tombstone is synced. One
  replica down or cut off holds every reap back (as Riak's delete, unlike a grace period alone,
  which brings back what a replica absent longer than it still holds: Cassandra's "zombies").
* The grace period covers what no answer can: a replaced value still in flight in an old message
  (a retransmission, a duplicate). It should exceed the longest a message can take: ten minutes
  by default.
* A replica numbers its writes to a key from its own count of that key's writes; a forgotten key
  starts again at zero, and a write numbered from there would look, to a replica still holding the
  old tombstone (a lost :class:`Reap`), like one it had already seen replaced: lost. So every
  replica keeps, durably, the highest number it ever gave a write (its *floor*), and its first
  write to a key it holds nothing of is numbered above it (:meth:`VersionSet.write`'s ``floor``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from novacron.runtime import Cancellable, Message

from .keys import Key
from .versions import Summary, VersionSet

if TYPE_CHECKING:
    from .service import StateSync

log = logging.getLogger(__name__)

#: where a replica keeps its floor (the highest number it ever gave one of its writes)
FLOOR_KEY = "ass-meta/floor"
#: tombstones asked about in one round (one message each way per peer)
MAX_ROUND_KEYS = 4096


class ReapAsk(Message, tag="ass-reap-ask", frozen=True):
    """Which of these tombstones do you hold, exactly and durably?"""

    round: int
    items: tuple[tuple[Key, Summary], ...]


class ReapHave(Message, tag="ass-reap-have", frozen=True):
    """The asked keys whose state here is that tombstone, synced to storage."""

    round: int
    keys: tuple[Key, ...]


class Reap(Message, tag="ass-reap", frozen=True):
    """Every replica holds these tombstones: forget each key whose state is still the one given."""

    items: tuple[tuple[Key, Summary], ...]


class Reaper:
    """The tombstone reaping of one replica (see the module doc), owned by its ``StateSync``."""

    def __init__(self, sync: StateSync) -> None:
        self.sync = sync
        self.rt = sync.rt
        self.since: dict[str, float] = {}  # tombstones held here, and since when
        raw = self.rt.storage.get(FLOOR_KEY)
        self.floor = int(msgspec.msgpack.decode(raw, type=int)) if raw is not None else 0
        self._round: tuple[int, dict[str, Summary], dict[str, set[str]]] | None = None
        self._rounds = 0
        self._timer: Cancellable | None = None
        self._expiry: Cancellable | None = None
        guard = sync._from_replica
        self.rt.on_message(ReapAsk, guard(self._on_ask))
        self.rt.on_message(ReapHave, guard(self._on_have))
        self.rt.on_message(Reap, guard(self._on_reap))

    def start(self) -> None:
        interval = self.sync.settings.reap_interval
        if interval is not None and self.sync.peers and self._timer is None:
            self._timer = self.rt.call_later(self.rt.random.uniform(0, interval), self._tick)

    def stop(self) -> None:
        for timer in (self._timer, self._expiry):
            if timer is not None:
                timer.cancel()
        self._timer = self._expiry = None

    def note(self, key: str, state: VersionSet) -> None:
        """A key's state changed here: track its tombstone, and the numbers of this replica's writes."""
        if state.is_tombstone:
            self.since.setdefault(key, self.rt.now())
        else:
            self.since.pop(key, None)
        for writer in state.writers:
            if writer.node == self.rt.node_id and writer.counter > self.floor:
                self.floor = writer.counter

    # -- the asking replica ---------------------------------------------------------------------
    def _tick(self) -> None:
        self._timer = self.rt.call_later(self.sync.settings.reap_interval, self._tick)  # type: ignore[arg-type]
        if self._round is None and self.since:
            self.rt.spawn(self._ask())

    async def _ask(self) -> None:
        grace = self.sync.settings.tombstone_grace
        now = self.rt.now()
        due = sorted(k for k, t in self.since.items() if now - t >= grace and not self.sync.writing(k))
        if not due:
            return
        self._rounds += 1
        number = self._rounds
        items = {k: self.sync.get(k).summary() for k in due[:MAX_ROUND_KEYS]}
        self._round = (number, items, {})
        await self.sync._durable()  # what it asks about is on its own disk first
        if self._round is None or self._round[0] != number:
            return
        ask = ReapAsk(number, tuple(items.items()))
        for peer in self.sync.peers:
            self.rt.send(peer, ask)
        self._expiry = self.rt.call_later(4 * self.sync.settings.interval, self._give_up, number)

    def _give_up(self, number: int) -> None:
        if self._round is not None and self._round[0] == number:
            log.info(
                "%s: reap round %d: not every replica answered; tombstones kept", self.rt.node_id, number
            )
            self._round = None

    def _on_have(self, src: str, msg: ReapHave) -> None:
        if self._round is None or self._round[0] != msg.round:
            return
        number, items, answers = self._round
        answers[src] = set(msg.keys)
        if set(answers) != set(self.sync.peers):
            return
        self._round = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        agreed = [(k, s) for k, s in items.items() if all(k in keys for keys in answers.values())]
        if not agreed:
            return
        for peer in self.sync.peers:
            self.rt.send(peer, Reap(tuple(agreed)))
        self.rt.spawn(self._forget(agreed))

    # -- every replica --------------------------------------------------------------------------
    def _holding(self, items: Any) -> list[str]:
        """The keys of ``items`` whose state here is exactly the tombstone given, and not about
        to change (no local write to it in progress)."""
        return [
            key
            for key, summary in items
            if key in self.since and not self.sync.writing(key) and self.sync.get(key).summary() == summary
        ]

    def _on_ask(self, src: str, msg: ReapAsk) -> None:
        self.rt.spawn(self._answer(src, msg))

    async def _answer(self, src: str, msg: ReapAsk) -> None:
        if not self._holding(msg.items):
            self.rt.send(src, ReapHave(msg.round, ()))
            return
        await self.sync._durable()  # "I hold it" must survive a crash of this replica
        self.rt.send(src, ReapHave(msg.round, tuple(self._holding(msg.items))))

    def _on_reap(self, src: str, msg: Reap) -> None:
        self.rt.spawn(self._forget(list(msg.items)))

    async def _forget(self, items: list[tuple[str, Summary]]) -> None:
        """Forget the keys still holding the agreed tombstones, the floor made durable first."""
        if not self._holding(items):
            return
        self.rt.storage.put(FLOOR_KEY, msgspec.msgpack.encode(self.floor))
        await self.sync._durable()
        keys = self._holding(items)  # (again: a write may have come in meanwhile)
        for key in keys:
            self.since.pop(key, None)
            self.sync._forget(key)
        self.sync.stats.tombstones_reaped += len(keys)
