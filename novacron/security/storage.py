"""Node state encrypted at rest: the storage contract with every value sealed by AES-256-GCM.

:class:`EncryptedStorage` wraps any :class:`novacron.runtime.Storage` (the real node's SQLite
file) and seals each key-value entry and log record on its way down: a fresh 96-bit nonce per
record, and the record's place as associated data (its key, or its log index), so that a record
moved to another key or index, or altered, fails to open instead of being read as something else.
A stolen disk, or a backup, then shows the key names and the log's length, nothing of the values.
The key is 32 bytes kept apart from the data (``security.encryption_key_file``): next to the data
it would protect nothing.

A store remembers that it is encrypted, and with which key: a sealed *canary* entry written at
first use. Opening it with another key, or encrypted storage over data written in the clear (or
the reverse, which the canary also betrays), fails at once with :class:`StorageKeyError` naming
the problem, rather than at the first read of some Raft entry. A record that fails to open later
raises :class:`CorruptRecord` naming it.

Pure (no I/O of its own): it runs over the simulator's storage as well as over SQLite. Its nonces
come from ``os.urandom``, not from the runtime's seeded generator, the one exception to that rule
here: a seeded nonce repeats whenever a seed is run again, and two records sealed under one key
and one nonce give the key stream away. (What a simulation does never depends on the sealed bytes,
so its traces stay deterministic.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from novacron.runtime import Storage

KEY_BYTES = 32
#: sealed records start with this: format version 1 (nonce, then ciphertext and tag)
MAGIC = b"NCE1"
NONCE_BYTES = 12
CANARY = "novacron-security/canary"
_CANARY_TEXT = b"novacron: this storage is encrypted with this key"


class StorageKeyError(ValueError):
    """The storage cannot be opened with this key (another key, or data written in the clear)."""


class CorruptRecord(ValueError):
    """A stored record failed its authentication: altered, moved, or not sealed at all."""


def load_key(path: Path | str) -> bytes:
    """A key file: 32 raw bytes, or 64 hexadecimal digits (whitespace ignored)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StorageKeyError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.decode("ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise StorageKeyError(
            f"the key file {path} must hold {KEY_BYTES} bytes, raw or as {2 * KEY_BYTES} hex digits "
            f"(it holds {len(raw)} bytes); make one with: head -c 32 /dev/urandom > {path}"
        )
    return key


class EncryptedStorage:
    """``inner`` with every value sealed under ``key`` (see the module doc)."""

    def __init__(self, inner: Storage, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise StorageKeyError(f"an encryption key is {KEY_BYTES} bytes, got {len(key)}")
        self.inner = inner
        self._aead = AESGCM(key)
        self._check_canary()

    # -- key-value area ----------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        sealed = self.inner.get(key)
        return None if sealed is None else self._open(sealed, _kv(key), f"entry {key!r}")

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, self._seal(bytes(value), _kv(key)))

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k in self.inner.keys(prefix) if k != CANARY]

    # -- log ---------------------------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self.inner.first_index

    @property
    def last_index(self) -> int:
        return self.inner.last_index

    def append(self, records: Sequence[bytes]) -> int:
        first = self.inner.last_index + 1
        nonces = os.urandom(NONCE_BYTES * len(records))  # one system call for the batch
        return self.inner.append(
            [
                self._seal(bytes(r), _log(first + i), nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES])
                for i, r in enumerate(records)
            ]
        )

    def entries(self, start: int, end: int | None = None) -> list[bytes]:
        sealed = self.inner.entries(start, end)
        return [self._open(s, _log(start + i), f"log record {start + i}") for i, s in enumerate(sealed)]

    def truncate(self, from_index: int) -> None:
        self.inner.truncate(from_index)

    def compact(self, upto_index: int) -> None:
        self.inner.compact(upto_index)

    def reset(self, first_index: int) -> None:
        self.inner.reset(first_index)

    async def sync(self) -> None:
        await self.inner.sync()

    def __getattr__(self, name: str):  # close(), abandon(), closed... of the storage underneath
        return getattr(self.inner, name)

    # -- sealing -------------------------------------------------------------------------------
    def _seal(self, plain: bytes, where: bytes, nonce: bytes | None = None) -> bytes:
        nonce = nonce or os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, plain, where)

    def _open(self, sealed: bytes, where: bytes, what: str) -> bytes:
        if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + NONCE_BYTES + 16:
            raise CorruptRecord(f"{what} is not an encrypted record (written in the clear, or cut short)")
        nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[len(MAGIC) + NONCE_BYTES :], where)
        except InvalidTag:
            raise CorruptRecord(f"{what} fails its authentication: altered, or moved here") from None

    def _check_canary(self) -> None:
        sealed = self.inner.get(CANARY)
        if sealed is None:
            if self.inner.keys() or self.inner.last_index >= self.inner.first_index:
                raise StorageKeyError(
                    "this storage holds data written in the clear: encryption cannot start on it "
                    "(start from an empty data_dir, or keep security.enable_encryption off)"
                )
            self.inner.put(CANARY, self._seal(_CANARY_TEXT, _kv(CANARY)))
            return
        try:
            self._open(sealed, _kv(CANARY), "the canary")
        except CorruptRecord:
            raise StorageKeyError("this storage was encrypted with another key") from None


def _kv(key: str) -> bytes:
    return b"kv:" + key.encode()


def _log(index: int) -> bytes:
    return b"log:%d" % index
