"""ASS on a node: a replicated key-value map that any replica writes, converging by gossip.

:class:`StateSync` runs on every replica. A write (:meth:`StateSync.put`, :meth:`StateSync.delete`)
is accepted locally, made durable (``rt.storage``, synced before the call returns) and pushed at
once to ``fanout`` peers; what a replica learns from a push it passes on to ``fanout`` others
(rumour mongering), so a write reaches everyone in a few hops without anyone waiting for anyone.
Pushes can be lost; *anti-entropy* repairs that: every ``interval`` a replica compares its map with
a random peer's, a tree of hashes first (:mod:`.store`), and the two exchange what either lacks. So
every replica that can reach the others ends with the same map, whatever was lost, duplicated,
reordered, partitioned or crashed on the way; concurrent writes to a key are all kept, as
siblings, until a write that read them replaces them (:mod:`.versions`).

Why eventual, not consensus: the map holds what every site needs to read locally and write
through partitions (VM placement records, node inventories, per-region counters); a Raft write
from one region costs a WAN round trip to a majority and stops in a minority partition. State that
must be linearizable goes to ``novacron.consensus``'s replicated KV instead.

*Adaptive*: the push fan-out and the anti-entropy period follow the network mode
(:meth:`SyncSettings.for_mode`): in a datacenter a write goes to every peer directly and repairs
run every second; across the internet a write goes to two peers that pass it on, and repairs run
every five seconds (each costs at least a WAN round trip and a digest per peer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Literal

import msgspec

from novacron.mode import ModeDetector
from novacron.monitoring.counters import counter
from novacron.runtime import Cancellable, FutureLike, Message, Runtime

from .keys import Key, check_key
from .reaper import Reaper
from .store import WIDTH, ReplicaStore
from .versions import Summary, VersionSet, VersionVector, ahead

log = logging.getLogger(__name__)

#: storage keys of the map's entries start with this (the node's storage is shared)
STORAGE_PREFIX = "ass/"
#: a value is at most this many bytes (a key at most MAX_KEY_BYTES, see .keys)
MAX_VALUE_BYTES = 1 << 20
#: a message carries at most this many bytes of values (the rest goes in the next one)
MAX_BATCH_BYTES = 1 << 20
#: ... and at most this many keys' summaries or names (a new replica compares every leaf with a
#: peer's whole map: one message for it all would outgrow a frame)
MAX_BATCH_KEYS = 4096


# -- messages ------------------------------------------------------------------------------------
class SyncPush(Message, tag="ass-push", frozen=True):
    """Key states the sender has; ``forward``: a rumour, to pass on if it is news."""

    items: tuple[tuple[Key, VersionSet], ...]
    forward: bool = False


class SyncDigest(Message, tag="ass-digest", frozen=True):
    """Anti-entropy, step 1: the sender's top hashes."""

    hashes: tuple[int, ...]


class SyncLeaves(Message, tag="ass-leaves", frozen=True):
    """Step 2: for the tops whose hashes differ, the sender's leaf hashes under them."""

    tops: tuple[int, ...]
    hashes: tuple[int, ...]


class SyncKeys(Message, tag="ass-keys", frozen=True):
    """Step 3: for the leaves whose hashes differ, every key the sender has there, summarised."""

    leaves: tuple[int, ...]
    summaries: tuple[tuple[Key, Summary], ...]


class SyncPull(Message, tag="ass-pull", frozen=True):
    """Step 4: the keys whose states the sender wants (the answer is a :class:`SyncPush`); the
    states the sender has news in go in a :class:`SyncPush` beside it."""

    keys: tuple[Key, ...]


class StateRequest(Message, tag="ass-request", frozen=True):
    """A client's read or write at this replica (:class:`~.client.StateClient`). ``context``: what
    the write replaces; ``replace_current``: replace whatever this replica holds now instead (a
    read and a write in one step, for clients that have no context of their own)."""

    request: int
    op: Literal["get", "put", "delete"]
    key: Key
    value: bytes | None = None
    context: VersionVector | None = None
    replace_current: bool = False


class StateReply(Message, tag="ass-reply", frozen=True):
    """The key's state at the replica after the request (``error``: why it was refused)."""

    request: int
    state: VersionSet | None = None
    error: str = ""


# -- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncSettings:
    """How eagerly a replica spreads writes and repairs (see the module doc).

    ``fanout``: peers a write (or a rumour's news) is pushed to, None for all of them;
    ``forward``: whether a replica passes on news it got from a push; ``interval``: seconds between
    anti-entropy rounds (each with one random peer); ``width``: of the anti-entropy hash tree
    (``width`` tops over ``width`` leaves each; all replicas must agree on it).
    ``tombstone_grace``: seconds a replica holds a deleted key's tombstone before it asks the
    others to forget it, and ``reap_interval`` how often it looks for such tombstones (None:
    never; see :mod:`.reaper`). These two are not the network mode's: a mode change keeps them.
    """

    fanout: int | None = None
    forward: bool = False
    interval: float = 1.0
    width: int = WIDTH
    tombstone_grace: float = 600.0
    reap_interval: float | None = 30.0

    def __post_init__(self) -> None:
        if self.fanout is not None and self.fanout < 1:
            raise ValueError(f"fanout must be >= 1 or None (every peer), got {self.fanout}")
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {self.interval}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if not self.tombstone_grace >= 0:
            raise ValueError(f"tombstone_grace must be >= 0 seconds, got {self.tombstone_grace}")
        if self.reap_interval is not None and not self.reap_interval > 0:
            raise ValueError(f"reap_interval must be > 0 seconds or None (never), got {self.reap_interval}")

    @classmethod
    def for_mode(cls, mode: str) -> SyncSettings:
        """datacenter: push to every peer, repair every second; hybrid: push to 3, who pass it on,
        repair every 2 s; internet: push to 2, who pass it on, repair every 5 s."""
        presets = {
            "datacenter": cls(fanout=None, forward=False, interval=1.0),
            "hybrid": cls(fanout=3, forward=True, interval=2.0),
            "internet": cls(fanout=2, forward=True, interval=5.0),
        }
        try:
            return presets[str(mode)]
        except KeyError:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(presets)}") from None


@dataclass
class SyncStats:
    """What a replica did, for reports and benchmarks."""

    writes: int = counter("writes and deletes accepted at this replica")
    pushes_sent: int = counter("push messages sent: new writes, and what anti-entropy repairs")
    rounds: int = counter("anti-entropy rounds started")
    rounds_in_sync: int = counter("digests received that matched this replica's (nothing to repair)")
    keys_learnt: int = counter("keys whose state changed from a peer's")
    rejected: int = counter("malformed key states, and sync messages from outside the group, refused")
    tombstones_reaped: int = counter("deleted keys forgotten here, every replica having their tombstone")


ChangeCallback = Callable[[str, VersionSet], None]


class StateSync:
    """One replica of the map (see the module doc). ``peers``: the replicas to sync with (default
    every peer of the runtime); every replica must list the same group. ``detector``: a
    ``novacron.mode.ModeDetector`` whose node-level mode the settings follow (:meth:`set_mode`);
    until it has decided, ``settings`` hold."""

    def __init__(
        self,
        rt: Runtime,
        *,
        peers: Iterable[str] | None = None,
        settings: SyncSettings | None = None,
        detector: ModeDetector | None = None,
    ) -> None:
        self.rt = rt
        self.settings = settings or SyncSettings()
        self.peers = tuple(p for p in (rt.peers if peers is None else peers) if p != rt.node_id)
        self.store = ReplicaStore(rt.node_id, width=self.settings.width)
        self.stats = SyncStats()
        self._subscribers: list[ChangeCallback] = []
        self._timer: Cancellable | None = None
        self._writing: dict[str, FutureLike[None]] = {}  # keys with a local write in progress
        self._pending: dict[str, VersionSet] = {}  # ... and that write, until it is durable
        self._next_sync: FutureLike[None] | None = None  # the sync the next writes wait for
        self._syncing = False
        self.reaper = Reaper(self)
        self._load()
        rt.on_message(SyncPush, self._from_replica(self._on_push))
        rt.on_message(SyncDigest, self._from_replica(self._on_digest))
        rt.on_message(SyncLeaves, self._from_replica(self._on_leaves))
        rt.on_message(SyncKeys, self._from_replica(self._on_keys))
        rt.on_message(SyncPull, self._from_replica(self._on_pull))
        rt.on_message(StateRequest, self._on_request)
        if self.peers:  # a random phase, so that replicas do not repair in lockstep
            self._timer = rt.call_later(rt.random.uniform(0, self.settings.interval), self._round)
        self.reaper.start()
        self._unsubscribe = (
            detector.subscribe(lambda change: self.set_mode(change.new) if change.peer is None else None)
            if detector is not None
            else None
        )

    # -- the map ------------------------------------------------------------------------------
    def get(self, key: str) -> VersionSet:
        """The key's state here: ``.values`` (several after concurrent writes, none if absent or
        deleted) and ``.context``, to hand back to the write that replaces them."""
        return self.store.get(key)

    def keys(self) -> list[str]:
        """Keys with a live value here."""
        return sorted(k for k in self.store.keys() if self.store.get(k).values)

    async def put(self, key: str, value: bytes, context: VersionVector | None = None) -> VersionSet:
        """Write ``value``, replacing the values ``context`` had read (None: replace nothing);
        returns once the write is durable here, and pushes it to peers."""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"a value is bytes, got {type(value).__name__}")
        if len(value) > MAX_VALUE_BYTES:
            raise ValueError(f"a value is at most {MAX_VALUE_BYTES} bytes, got {len(value)}")
        return await self._write(key, bytes(value), context)

    async def delete(self, key: str, context: VersionVector | None = None) -> VersionSet:
        """Delete the values ``context`` had read (a tombstone, so the delete wins over them)."""
        return await self._write(key, None, context)

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(key, state)`` whenever a key changes here, by a write or from a peer;
        returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def set_mode(self, mode: str) -> None:
        """Follow a network-mode change (e.g. from ``novacron.mode.ModeDetector.subscribe``)."""
        s = self.settings
        self.settings = replace(
            SyncSettings.for_mode(mode),
            width=s.width,
            tombstone_grace=s.tombstone_grace,
            reap_interval=s.reap_interval,
        )

    def stop(self) -> None:
        self.reaper.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def _write(self, key: str, value: bytes | None, context: VersionVector | None) -> VersionSet:
        """A local write, seen by nobody (readers, peers) until it is durable: a write that reached
        a peer and then died in a crash would free its number for the next write here, and the
        two values under one number would never reconcile. Local writes to a key go one at a time,
        so that each takes its number after the last is durable."""
        check_key(key)
        while key in self._writing:
            await self._writing[key]
        done = self._writing[key] = self.rt.create_future()
        try:
            written = self.store.get(key).write(self.rt.node_id, value, context, floor=self.reaper.floor)
            self._pending[key] = written
            self._persist(key, written)
            await self._durable()
            self.store.join(key, written)  # beside what peers sent meanwhile
        finally:
            self._pending.pop(key, None)
            del self._writing[key]
            done.set_result(None)
        state = self.store.get(key)
        self._persist(key, state)
        self.stats.writes += 1
        self.reaper.note(key, state)
        self._notify(key, state)
        self._push([(key, state)], exclude=None)
        return state

    # -- spreading ----------------------------------------------------------------------------
    def _from_replica(self, handler: Callable[[str, Message], None]) -> Callable[[str, Message], None]:
        """``handler`` for messages from the group only: a node outside it (a client slot, a
        misconfigured peer) may read and write through requests, not inject states."""
        group = frozenset(self.peers)

        def guarded(src: str, msg: Message) -> None:
            if src in group:
                handler(src, msg)
                return
            self.stats.rejected += 1
            log.warning(
                "%s: ignored %s from %s, which is not a replica of this group",
                self.rt.node_id,
                type(msg).__name__,
                src,
            )

        return guarded

    def _push(self, items: list[tuple[str, VersionSet]], exclude: str | None) -> None:
        targets = [p for p in self.peers if p != exclude]
        fanout = self.settings.fanout
        if fanout is not None and fanout < len(targets):
            targets = self.rt.random.sample(targets, fanout)
        for peer in targets:
            self._send_states(peer, items, forward=self.settings.forward)

    def _send_states(self, peer: str, items: list[tuple[str, VersionSet]], *, forward: bool) -> None:
        """Key states to ``peer`` in messages of at most ``MAX_BATCH_BYTES`` of values and
        ``MAX_BATCH_KEYS`` keys."""
        batch: list[tuple[str, VersionSet]] = []
        size = 0
        for key, state in items:
            weight = len(key) + sum(len(v) for v in state.siblings if v is not None)
            if batch and (size + weight > MAX_BATCH_BYTES or len(batch) >= MAX_BATCH_KEYS):
                self.rt.send(peer, SyncPush(tuple(batch), forward))
                self.stats.pushes_sent += 1
                batch, size = [], 0
            batch.append((key, state))
            size += weight
        if batch:
            self.rt.send(peer, SyncPush(tuple(batch), forward))
            self.stats.pushes_sent += 1

    def _on_push(self, src: str, msg: SyncPush) -> None:
        news = []
        for key, state in msg.items:
            try:
                check_key(key)
                state.check()
            except ValueError as exc:
                self.stats.rejected += 1
                log.warning("%s: refused the state of key %r from %s: %s", self.rt.node_id, key, src, exc)
                continue
            if self.store.join(key, state):
                joined = self.store.get(key)
                self._persist(key, joined)
                self.stats.keys_learnt += 1
                self.reaper.note(key, joined)
                self._notify(key, joined)
                news.append((key, joined))
        if news and msg.forward and self.settings.forward:
            self._push(news, exclude=src)

    # -- anti-entropy -------------------------------------------------------------------------
    def _round(self) -> None:
        self._timer = self.rt.call_later(self.settings.interval, self._round)
        peer = self.rt.random.choice(self.peers)
        self.stats.rounds += 1
        self.rt.send(peer, SyncDigest(self.store.top_hashes()))

    def _on_digest(self, src: str, msg: SyncDigest) -> None:
        ours = self.store.top_hashes()
        if len(msg.hashes) != len(ours):
            log.warning(
                "%s: %s's hash tree is %d wide, this replica's %d: the group must agree on its width",
                self.rt.node_id,
                src,
                len(msg.hashes),
                len(ours),
            )
            return
        tops = _differing(range(len(ours)), ours, msg.hashes)
        if not tops:
            self.stats.rounds_in_sync += 1
            return
        self.rt.send(src, SyncLeaves(tuple(tops), tuple(self.store.leaf_hashes(tops))))

    def _on_leaves(self, src: str, msg: SyncLeaves) -> None:
        tops = list(msg.tops)
        if (
            any(not 0 <= t < self.store.width for t in tops)
            or len(msg.hashes) != len(tops) * self.store.width
        ):
            log.warning("%s: %s sent a malformed set of leaves (tops %s)", self.rt.node_id, src, msg.tops)
            return
        leaves = _differing(self.store.leaves_under(tops), self.store.leaf_hashes(tops), msg.hashes)
        # whole leaves per message: the receiver takes a key it has and the sender does not list,
        # in a listed leaf, for a key the sender lacks
        batch: list[int] = []
        count = 0
        for leaf in leaves:
            size = len(self.store.keys_in(leaf))
            if batch and count + size > MAX_BATCH_KEYS:
                self.rt.send(src, SyncKeys(tuple(batch), tuple(self.store.summaries(batch))))
                batch, count = [], 0
            batch.append(leaf)
            count += size
        if batch:
            self.rt.send(src, SyncKeys(tuple(batch), tuple(self.store.summaries(batch))))

    def _on_keys(self, src: str, msg: SyncKeys) -> None:
        if any(not 0 <= leaf < self.store.width**2 for leaf in msg.leaves):
            log.warning("%s: %s sent leaves out of range: %s", self.rt.node_id, src, msg.leaves)
            return
        theirs = dict(msg.summaries)
        keys = set(theirs)
        for leaf in msg.leaves:
            keys.update(self.store.keys_in(leaf))
        push, pull = [], []
        for key in sorted(keys):
            mine = self.store.get(key)
            summary, my_summary = theirs.get(key, Summary()), mine.summary()
            if ahead(my_summary, summary):
                push.append((key, mine))
            if ahead(summary, my_summary):
                pull.append(key)
        if push:
            self._send_states(src, push, forward=False)
        for start in range(0, len(pull), MAX_BATCH_KEYS):
            self.rt.send(src, SyncPull(tuple(pull[start : start + MAX_BATCH_KEYS])))

    def _on_pull(self, src: str, msg: SyncPull) -> None:
        items = [(key, self.store.get(key)) for key in msg.keys if key in self.store]
        if items:
            self._send_states(src, items, forward=False)

    # -- clients on other processes -----------------------------------------------------------
    def _on_request(self, src: str, msg: StateRequest) -> None:
        if msg.op == "get":
            self.rt.send(src, StateReply(msg.request, self.get(msg.key)))
        else:
            self.rt.spawn(self._serve_write(src, msg))

    async def _serve_write(self, src: str, msg: StateRequest) -> None:
        context = self.get(msg.key).context if msg.replace_current else msg.context
        try:
            if msg.op == "put":
                if msg.value is None:
                    raise ValueError("a put needs a value")
                state = await self.put(msg.key, msg.value, context)
            else:
                state = await self.delete(msg.key, context)
        except (TypeError, ValueError) as exc:
            self.rt.send(src, StateReply(msg.request, error=str(exc)))
            return
        self.rt.send(src, StateReply(msg.request, state))

    # -- durability ---------------------------------------------------------------------------
    async def _durable(self) -> None:
        """Return once everything put to storage so far is synced. Writes that arrive while a
        sync is on its way share the next one (group commit: one fsync for many writes)."""
        if self._next_sync is None:
            self._next_sync = self.rt.create_future()
            if not self._syncing:
                self._syncing = True
                self.rt.spawn(self._sync_batches())
        await self._next_sync

    async def _sync_batches(self) -> None:
        try:
            while self._next_sync is not None:
                batch, self._next_sync = self._next_sync, None
                try:
                    await self.rt.storage.sync()
                except Exception as exc:  # every write of the batch fails with it
                    batch.set_exception(exc)
                else:
                    batch.set_result(None)
        finally:
            self._syncing = False

    def _persist(self, key: str, state: VersionSet) -> None:
        pending = self._pending.get(key)  # a local write on its way to the disk stays on its way
        self.rt.storage.put(STORAGE_PREFIX + key, _encode(state if pending is None else state.join(pending)))

    def _load(self) -> None:
        """The map as this node's storage kept it (after a restart: what was synced)."""
        for name in self.rt.storage.keys(STORAGE_PREFIX):
            raw = self.rt.storage.get(name)
            if raw is None:
                continue
            try:
                state = _decode(raw)
                state.check()
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                log.error("%s: stored state of %r is unreadable, skipped: %s", self.rt.node_id, name, exc)
                continue
            key = name[len(STORAGE_PREFIX) :]
            self.store.join(key, state)
            self.reaper.note(key, self.store.get(key))

    def writing(self, key: str) -> bool:
        """Whether a local write to ``key`` is on its way to the disk."""
        return key in self._writing

    def _forget(self, key: str) -> None:
        """A reaped tombstone (see :mod:`.reaper`): the key is gone here, from memory and disk."""
        self.store.remove(key)
        self.rt.storage.delete(STORAGE_PREFIX + key)
        self._notify(key, VersionSet())

    def _notify(self, key: str, state: VersionSet) -> None:
        for callback in list(self._subscribers):
            callback(key, state)


def _differing(ids: Iterable[int], ours: Iterable[int], theirs: Iterable[int]) -> list[int]:
    return [i for i, a, b in zip(ids, ours, theirs, strict=True) if a != b]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(VersionSet).decode
