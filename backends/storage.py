"""Durable node state on disk: the :class:`novacron.runtime.Storage` contract on SQLite.

Why SQLite: one file, atomic commits, crash recovery and fsync discipline
that have been tested for decades, in the standard library. The contract's
durability rule maps onto a transaction: every write joins one open
transaction (so it is visible to this node at once), :meth:`SQLiteStorage.sync`
commits it and returns once the write-ahead log is fsync'd. Closing without a commit —
what :meth:`SQLiteStorage.abandon` does, and what a killed process does — rolls
the open transaction back, exactly the "unsynced writes may be lost" of the
contract.

Layout: ``log(idx INTEGER PRIMARY KEY, data BLOB)``, ``kv(key TEXT PRIMARY KEY,
value BLOB)`` and ``meta`` holding ``first_index``. The two log bounds are
cached in memory because Raft reads them on every message.

The methods are synchronous and run on the event loop thread: single-row
writes into an open transaction take microseconds. The fsync is the only slow
step, so it runs in a worker thread: the commit itself (``synchronous=NORMAL``:
no fsync) is instant, then :meth:`~SQLiteStorage.sync` fsyncs the WAL file
(what ``synchronous=FULL`` would do inside the commit) while the event loop
goes on serving messages and collecting the next batch of writes: group
commit, as databases and etcd do. A checkpoint of the WAL into the database
is fsync'd by SQLite itself in both modes.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, bytearray or memoryview, not {type(value).__name__}")


def _as_index(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


class SQLiteStorage:
    """A node's log and key-value area in one SQLite file (``":memory:"`` for tests)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open and commit transactions ourselves.
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # sync() fsyncs the WAL itself, off the loop
        self._db.executescript(_SCHEMA)
        self._load_bounds()
        self._commits = 0  # transactions committed so far...
        self._durable = 0  # ...and how many of them a completed fsync covers
        self._wal_fd: int | None = None

    def _load_bounds(self) -> None:
        db = self._conn()
        row = db.execute("SELECT value FROM meta WHERE name = 'first_index'").fetchone()
        self._first = row[0] if row else 1
        (last,) = db.execute("SELECT MAX(idx) FROM log").fetchone()
        self._last = last if last is not None else self._first - 1

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"storage {self.path} is closed")
        return self._db

    def _write(self) -> sqlite3.Connection:
        """The connection, inside the open (unsynced) transaction."""
        db = self._conn()
        if not db.in_transaction:
            db.execute("BEGIN")
        return db

    # --- key-value area -----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        row = self._conn().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: bytes) -> None:
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        data = _as_bytes(value, f"value for {key!r}")
        self._write().execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, data))

    def delete(self, key: str) -> None:
        """Remove ``key``; a no-op if it is absent."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        self._write().execute("DELETE FROM kv WHERE key = ?", (key,))

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        rows = self._conn().execute(
            "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return [key for (key,) in rows]

    # --- the log ------------------------------------------------------------------------------

    @property
    def first_index(self) -> int:
        return self._first

    @property
    def last_index(self) -> int:
        return self._last

    def append(self, records: Sequence[bytes]) -> int:
        if isinstance(records, bytes | bytearray | memoryview | str):
            raise TypeError("append() takes a sequence of records, not a single bytes object")
        rows = [
            (self._last + i, _as_bytes(record, f"log record {i - 1}"))
            for i, record in enumerate(records, start=1)
        ]
        if rows:
            self._write().executemany("INSERT INTO log (idx, data) VALUES (?, ?)", rows)
            self._last += len(rows)
        return self._last

    def entries(self, start: int, end: int | None = None) -> list[bytes]:
        """Records with ``start <= index < end`` (``end`` defaults to ``last_index + 1``).

        ``start`` below :attr:`first_index` (compacted away) or a range beyond
        the tail is a ``ValueError``: a caller asking for those has lost track
        of the log, and silently returning fewer records would hide it.
        """
        start = _as_index(start, "start")
        stop = self._last + 1 if end is None else _as_index(end, "end")
        if start < self._first:
            raise ValueError(
                f"entries({start}, ...): index {start} was compacted away (first_index is {self._first})"
            )
        if stop > self._last + 1:
            raise ValueError(f"entries(..., {stop}): end is beyond the tail (last_index is {self._last})")
        if start > stop:
            raise ValueError(f"entries({start}, {stop}): start is after end")
        rows = self._conn().execute(
            "SELECT data FROM log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop)
        )
        return [data for (data,) in rows]

    def truncate(self, from_index: int) -> None:
        """Drop ``from_index`` and everything after it.

        ``from_index`` must be in ``[first_index, last_index + 1]`` (the upper
        end is a no-op): truncating into the compacted prefix would rewrite
        history that a snapshot already covers.
        """
        from_index = _as_index(from_index, "from_index")
        if from_index < self._first:
            raise ValueError(
                f"truncate({from_index}): below first_index {self._first} "
                "(those records were compacted into a snapshot)"
            )
        if from_index > self._last + 1:
            raise ValueError(f"truncate({from_index}): beyond the tail (last_index is {self._last})")
        if from_index <= self._last:
            self._write().execute("DELETE FROM log WHERE idx >= ?", (from_index,))
            self._last = from_index - 1

    def compact(self, upto_index: int) -> None:
        """Drop the records before ``upto_index``; ``first_index`` becomes ``upto_index``.

        ``upto_index`` may be ``last_index + 1`` (everything compacted, empty
        log); beyond that is a ``ValueError``. At or below ``first_index`` it
        is a no-op (already compacted).
        """
        upto_index = _as_index(upto_index, "upto_index")
        if upto_index > self._last + 1:
            raise ValueError(
                f"compact({upto_index}): beyond last_index + 1 ({self._last + 1}); "
                "cannot compact records that do not exist"
            )
        if upto_index <= self._first:
            return
        db = self._write()
        db.execute("DELETE FROM log WHERE idx < ?", (upto_index,))
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('first_index', ?)", (upto_index,))
        self._first = upto_index

    def reset(self, first_index: int) -> None:
        """Drop the whole log and restart it empty at ``first_index`` (a snapshot was installed)."""
        first_index = _as_index(first_index, "first_index")
        if first_index < 1:
            raise ValueError(f"reset({first_index}): log indexes start at 1")
        db = self._write()
        db.execute("DELETE FROM log")
        db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('first_index', ?)", (first_index,))
        self._first = first_index
        self._last = first_index - 1

    # --- durability ---------------------------------------------------------------------------

    async def sync(self) -> None:
        """Commit every write so far and return once it is on disk (the WAL fsync'd)."""
        db = self._conn()
        if db.in_transaction:
            db.execute("COMMIT")
            self._commits += 1
        target = self._commits
        if target <= self._durable or self.path == ":memory:":
            return
        fd = self._wal()
        if fd is None:  # no WAL file: everything was checkpointed (and fsync'd) into the database
            self._durable = max(self._durable, target)
            return
        await asyncio.to_thread(os.fsync, fd)
        self._durable = max(self._durable, target)

    def _wal(self) -> int | None:
        """A descriptor of the WAL file (fsync acts on the file, whichever descriptor is used)."""
        if self._wal_fd is None:
            try:
                self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
            except FileNotFoundError:
                return None
        return self._wal_fd

    def _close_wal(self) -> None:
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    def close(self) -> None:
        """Commit and close (a clean shutdown)."""
        if self._db is None:
            return
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        if self._commits > self._durable and self._wal() is not None:
            os.fsync(self._wal())  # a clean shutdown leaves nothing undurable
        self._close_wal()
        self._db.close()
        self._db = None

    def abandon(self) -> None:
        """Close *without* committing: unsynced writes are lost, as in a crash."""
        if self._db is None:
            return
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._close_wal()
        self._db.close()
        self._db = None

    @property
    def closed(self) -> bool:
        return self._db is None

    def __repr__(self) -> str:
        return f"<SQLiteStorage {self.path} log [{self._first}, {self._last}]>"
