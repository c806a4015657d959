"""What one replica knows of one key: its concurrent values and their causal history.

ASS replicates a key-value map without coordination: any replica accepts a write, replicas
exchange what they have, and every replica ends with the same state. Two writes are ordered when
one's writer had read the other (the *context* a read returns, handed back to the write);
otherwise they are concurrent, and both values are kept (*siblings*) until a write that has read
both replaces them. Nothing is decided by wall clocks, so no write is lost to a skewed clock.

The causal history is kept as a *dotted version vector set* (Almeida, Baquero, Gonçalves, Preguiça
and Fonte, "Scalable and Accurate Causality Tracking for Eventually Consistent Stores", DAIS 2014;
the structure of Riak's ``dvvset``): per node that wrote the key, the number of writes it made
(``counter``) and the values of its latest ones not yet replaced, newest first. Its value at
position ``k`` of node ``i``'s list was written by event (*dot*) ``(i, counter - k)``; every older
event of ``i`` is known and replaced. Why not a plain version vector per value: with one, two
writes at the same replica that did not read each other look ordered (the second's vector
dominates the first's), and the first is lost; and a context read at a replica that had seen a
later write of ``i`` but not an earlier one would claim to replace the earlier one unseen. Dots make
both exact, at the cost of a few integers per writer.

:class:`VersionSet` is immutable and pure: a replica replaces its set with :meth:`VersionSet.write`
(a local write) or :meth:`VersionSet.join` (what a peer sent), both of which are commutative,
associative and idempotent where they should be, so replicas converge whatever order, duplication
or loss their messages meet. A deleted key keeps its history as a value of ``None`` (a tombstone),
so that the delete wins over the writes it read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec

Counter = Annotated[int, msgspec.Meta(ge=0)]
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class VersionVector(msgspec.Struct, frozen=True, array_like=True):
    """node -> how many of its writes to a key a reader had seen: a read's *context*, handed back
    to the write that follows the read, so that the write replaces exactly what was read.
    Kept sorted by node (one canonical form: equal vectors are equal structs)."""

    entries: tuple[tuple[NodeId, Counter], ...] = ()

    @classmethod
    def of(cls, counts: dict[str, int]) -> VersionVector:
        return cls(tuple(sorted((node, int(n)) for node, n in counts.items() if n > 0)))

    def get(self, node: str) -> int:
        for name, n in self.entries:
            if name == node:
                return n
        return 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.entries)

    def merge(self, other: VersionVector) -> VersionVector:
        counts = self.as_dict()
        for node, n in other.entries:
            counts[node] = max(counts.get(node, 0), n)
        return VersionVector.of(counts)

    def descends(self, other: VersionVector) -> bool:
        """Whether a reader with this context had seen everything ``other`` had."""
        return all(self.get(node) >= n for node, n in other.entries)


class Writer(msgspec.Struct, frozen=True, array_like=True):
    """One node's writes to a key: ``counter`` of them, the values of the latest not replaced
    first (``values[k]`` was write number ``counter - k``)."""

    node: NodeId
    counter: Counter
    values: tuple[bytes | None, ...] = ()

    @property
    def replaced_up_to(self) -> int:
        """Every write of this node up to this number is known and replaced."""
        return self.counter - len(self.values)


class VersionSet(msgspec.Struct, frozen=True, array_like=True):
    """A key's state at one replica (see the module doc); ``writers`` sorted by node."""

    writers: tuple[Writer, ...] = ()

    # -- reading --------------------------------------------------------------------------------
    @property
    def siblings(self) -> list[bytes | None]:
        """Every value not replaced, tombstones (``None``) included: more than one after
        concurrent writes."""
        return [v for w in self.writers for v in w.values]

    @property
    def is_tombstone(self) -> bool:
        """Deleted: every value not replaced is a delete (and there is at least one)."""
        siblings = self.siblings
        return bool(siblings) and all(v is None for v in siblings)

    @property
    def values(self) -> list[bytes]:
        """The live values (tombstones left out): empty when the key is absent or deleted."""
        return [v for v in self.siblings if v is not None]

    @property
    def context(self) -> VersionVector:
        """What a read of this state has seen: hand it to :meth:`write` to replace these values."""
        return VersionVector(tuple((w.node, w.counter) for w in self.writers if w.counter > 0))

    def dots(self) -> list[tuple[str, int]]:
        """The writes whose values are here, as ``(node, number)``."""
        return [(w.node, w.counter - k) for w in self.writers for k in range(len(w.values))]

    def covers(self, node: str, number: int) -> bool:
        """Whether this state has seen write ``number`` of ``node`` (kept here or replaced)."""
        w = self._writer(node)
        return w is not None and w.counter >= number

    def holds(self, node: str, number: int) -> bool:
        """Whether write ``number`` of ``node`` is here and not replaced."""
        w = self._writer(node)
        return w is not None and w.replaced_up_to < number <= w.counter

    # -- changing -------------------------------------------------------------------------------
    def write(
        self, node: str, value: bytes | None, context: VersionVector | None = None, *, floor: int = 0
    ) -> VersionSet:
        """A write at replica ``node`` by a client that had read ``context`` (None: a blind write,
        which replaces nothing): the values ``context`` had seen are replaced by ``value`` under a
        new dot of ``node``; values written concurrently stay beside it.

        ``floor``: a number the new dot must exceed when ``node`` holds no value of the key here
        (a jump claims the skipped numbers replaced, which is harmless: none of them is a live
        write of this key). A replica that has reaped a key's tombstone (:mod:`.reaper`) passes
        the highest number it ever gave a write, so that a dot of the forgotten history is never
        given again: a replica still holding the old tombstone would take the new write for one
        it had seen replaced."""
        seen = VersionSet(tuple(Writer(n, c) for n, c in (context or VersionVector()).entries))
        merged = {w.node: w for w in self.join(seen).writers}
        mine = merged.get(node, Writer(node, 0))
        start = mine.counter if mine.values else max(mine.counter, floor)
        merged[node] = Writer(node, start + 1, (value, *mine.values))
        return VersionSet(tuple(merged[n] for n in sorted(merged)))

    def join(self, other: VersionSet) -> VersionSet:
        """Everything both states know: a value stays unless the other state has seen its write
        and replaced it."""
        if other is self or other == self:
            return self
        mine = {w.node: w for w in self.writers}
        for theirs in other.writers:
            ours = mine.get(theirs.node)
            mine[theirs.node] = theirs if ours is None else _join_writer(ours, theirs)
        return VersionSet(tuple(mine[n] for n in sorted(mine)))

    def summary(self) -> Summary:
        """What anti-entropy compares: per writer, its counter and how far it is replaced."""
        return Summary(tuple((w.node, w.counter, w.replaced_up_to) for w in self.writers))

    def check(self) -> None:
        """Raise ``ValueError`` naming what is wrong with a set that came off the wire."""
        nodes = [w.node for w in self.writers]
        if nodes != sorted(set(nodes)):
            raise ValueError(f"writers must be distinct and sorted by node, got {nodes}")
        for w in self.writers:
            if len(w.values) > w.counter:
                raise ValueError(f"writer {w.node!r} has {len(w.values)} values but only {w.counter} writes")

    def _writer(self, node: str) -> Writer | None:
        for w in self.writers:
            if w.node == node:
                return w
        return None


class Summary(msgspec.Struct, frozen=True, array_like=True):
    """A key's state without its values: ``(node, counter, replaced_up_to)`` per writer. Equal
    summaries mean equal states (a write's value is fixed by its dot)."""

    writers: tuple[tuple[NodeId, Counter, Counter], ...] = ()


def ahead(a: Summary, b: Summary) -> bool:
    """Whether a replica whose state of a key is summarised by ``a`` has news for one summarised
    by ``b``: a newer write of some node, or the knowledge that one of ``b``'s values was replaced.
    (Both can hold at once: then each has news for the other.)"""
    theirs = {node: (counter, replaced) for node, counter, replaced in b.writers}
    for node, counter, replaced in a.writers:
        their_counter, their_replaced = theirs.get(node, (0, 0))
        if counter > their_counter or replaced > their_replaced:
            return True
    return False


def _join_writer(a: Writer, b: Writer) -> Writer:
    """One node's writes known to two replicas: the newest counter, and of its values those that
    neither replica has seen replaced (a write is replaced at a replica when its number is at or
    below that replica's ``replaced_up_to``)."""
    if a.counter < b.counter:
        a, b = b, a
    keep = min(len(a.values), a.counter - b.replaced_up_to)
    return a if keep == len(a.values) else Writer(a.node, a.counter, a.values[:keep])


def join_all(sets: Iterable[VersionSet]) -> VersionSet:
    result = VersionSet()
    for s in sets:
        result = result.join(s)
    return result
