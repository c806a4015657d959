"""One replica's map of keys to :class:`~.versions.VersionSet`, indexed for anti-entropy.

Anti-entropy asks "what do you have that I do not?" without sending the whole map. Keys are
hashed into a fixed number of *buckets*; each bucket has a hash of its keys' summaries, kept up to
date as keys change (an XOR of per-key hashes: one change costs two hashes, not a pass over the
bucket). Two replicas compare bucket hashes first, then the summaries of the keys in buckets that
differ, then send the sets one of them lacks (a two-level Merkle tree, as Dynamo's anti-entropy,
flattened). With ``B`` buckets and ``d`` differing keys an exchange costs ``O(B + d x keys per
bucket)``, against ``O(keys)`` for comparing everything.

Pure: no clock, no network, no storage (the service, :mod:`.service`, persists and sends).
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import xxhash

from .versions import Summary, VersionSet, VersionVector

#: buckets of a store unless told otherwise (a digest of 64 hashes is about 600 bytes)
BUCKETS = 64
_encode = msgspec.msgpack.Encoder().encode


def bucket_of(key: str, buckets: int) -> int:
    return xxhash.xxh3_64_intdigest(key.encode()) % buckets


def _key_hash(key: str, summary: Summary) -> int:
    return xxhash.xxh3_64_intdigest(_encode((key, summary)))


class ReplicaStore:
    """Keys to version sets, with per-bucket hashes of their summaries (see the module doc)."""

    def __init__(self, node_id: str, *, buckets: int = BUCKETS) -> None:
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {buckets}")
        self.node_id, self.buckets = node_id, buckets
        self._sets: dict[str, VersionSet] = {}
        self._hashes = [0] * buckets
        self._keys: list[set[str]] = [set() for _ in range(buckets)]

    def __len__(self) -> int:
        return len(self._sets)

    def __contains__(self, key: str) -> bool:
        return key in self._sets

    def keys(self) -> Iterator[str]:
        return iter(self._sets)

    def get(self, key: str) -> VersionSet:
        """The key's state here (an empty set if it was never written)."""
        return self._sets.get(key, VersionSet())

    def write(self, key: str, value: bytes | None, context: VersionVector | None = None) -> VersionSet:
        """A write accepted by this replica (``value`` None: a delete); returns the key's new state."""
        return self._replace(key, self.get(key).write(self.node_id, value, context))

    def join(self, key: str, incoming: VersionSet) -> bool:
        """Merge a peer's state of ``key``; whether this replica learnt anything."""
        current = self.get(key)
        joined = current.join(incoming)
        if joined == current:
            return False
        self._replace(key, joined)
        return True

    # -- anti-entropy ---------------------------------------------------------------------------
    def bucket_hashes(self) -> tuple[int, ...]:
        return tuple(self._hashes)

    def keys_in(self, bucket: int) -> list[str]:
        return sorted(self._keys[bucket])

    def summaries(self, buckets: list[int]) -> list[tuple[str, Summary]]:
        """Every key of ``buckets`` with its summary, in a stable order."""
        return [(key, self._sets[key].summary()) for b in buckets for key in self.keys_in(b)]

    def _replace(self, key: str, new: VersionSet) -> VersionSet:
        b = bucket_of(key, self.buckets)
        old = self._sets.get(key)
        if old is not None:
            self._hashes[b] ^= _key_hash(key, old.summary())
        self._hashes[b] ^= _key_hash(key, new.summary())
        self._sets[key] = new
        self._keys[b].add(key)
        return new
