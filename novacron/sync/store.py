"""One replica's map of keys to :class:`~.versions.VersionSet`, indexed for anti-entropy.

Anti-entropy asks "what do you have that I do not?" without sending the whole map. Keys are
hashed into ``width x width`` *leaves*, grouped under ``width`` *tops*; each leaf has a hash of
its keys' summaries and each top the combination of its leaves', kept up to date as keys change
(XORs of per-key hashes: one change costs two hashes, not a pass over anything). Two replicas
compare top hashes, then the leaf hashes under tops that differ, then the summaries of the keys in
leaves that differ, and send the states one of them lacks: a Merkle tree of depth two, as
Dynamo's anti-entropy. In sync, a round costs ``width`` hashes; after ``d`` changes it costs about
``d`` tops' leaves and ``d`` leaves' keys, whatever the size of the map.

Pure: no clock, no network, no storage (the service, :mod:`.service`, persists and sends).
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import xxhash

from .versions import Summary, VersionSet, VersionVector

#: tops of a store's hash tree unless told otherwise, each over as many leaves (64: 4,096 leaves;
#: a round in sync sends 64 hashes, about 600 bytes)
WIDTH = 64
_encode = msgspec.msgpack.Encoder().encode


def leaf_of(key: str, width: int) -> int:
    return xxhash.xxh3_64_intdigest(key.encode()) % (width * width)


def _key_hash(key: str, summary: Summary) -> int:
    return xxhash.xxh3_64_intdigest(_encode((key, summary)))


class ReplicaStore:
    """Keys to version sets, with the hash tree of their summaries (see the module doc)."""

    def __init__(self, node_id: str, *, width: int = WIDTH) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.node_id, self.width = node_id, width
        self._sets: dict[str, VersionSet] = {}
        self._leaves = [0] * (width * width)
        self._tops = [0] * width
        self._keys: list[set[str]] = [set() for _ in range(width * width)]

    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, key: str) -> bool:
        return key in self._sets

    def keys(self) -> Iterator[str]:
        return iter(self._sets)

    def get(self, key: str) -> VersionSet:
        """The key's state here (an empty set if it was never written)."""
        return self._sets.get(key, VersionSet())

    def write(
        self, key: str, value: bytes | None, context: VersionVector | None = None, *, floor: int = 0
    ) -> VersionSet:
        """A write accepted by this replica (``value`` None: a delete); returns the key's new state.
        ``floor``: see :meth:`VersionSet.write`."""
        return self._replace(key, self.get(key).write(self.node_id, value, context, floor=floor))

    def remove(self, key: str) -> None:
        """Forget ``key`` (a reaped tombstone, see :mod:`.reaper`)."""
        old = self._sets.pop(key, None)
        if old is None:
            return
        leaf = leaf_of(key, self.width)
        delta = _key_hash(key, old.summary())
        self._leaves[leaf] ^= delta
        self._tops[leaf // self.width] ^= delta
        self._keys[leaf].discard(key)

    def join(self, key: str, incoming: VersionSet) -> bool:
        """Merge a peer's state of ``key``; whether this replica learnt anything."""
        current = self.get(key)
        joined = current.join(incoming)
        if joined == current:
            return False
        self._replace(key, joined)
        return True

    # -- anti-entropy ---------------------------------------------------------------------------
    def top_hashes(self) -> tuple[int, ...]:
        return tuple(self._tops)

    def leaf_hashes(self, tops: list[int]) -> list[int]:
        """The leaves' hashes under each of ``tops``, ``width`` per top, in order."""
        w = self.width
        return [h for top in tops for h in self._leaves[top * w : (top + 1) * w]]

    def leaves_under(self, tops: list[int]) -> list[int]:
        w = self.width
        return [leaf for top in tops for leaf in range(top * w, (top + 1) * w)]

    def keys_in(self, leaf: int) -> list[str]:
        return sorted(self._keys[leaf])

    def summaries(self, leaves: list[int]) -> list[tuple[str, Summary]]:
        """Every key of ``leaves`` with its summary, in a stable order."""
        return [(key, self._sets[key].summary()) for leaf in leaves for key in self.keys_in(leaf)]

    def _replace(self, key: str, new: VersionSet) -> VersionSet:
        leaf = leaf_of(key, self.width)
        old = self._sets.get(key)
        delta = _key_hash(key, new.summary())
        if old is not None:
            delta ^= _key_hash(key, old.summary())
        self._leaves[leaf] ^= delta
        self._tops[leaf // self.width] ^= delta
        self._sets[key] = new
        self._keys[leaf].add(key)
        return new
