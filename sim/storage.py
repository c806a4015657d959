"""Simulated durable storage: what a crash keeps is exactly what was synced.

Two copies: the *live* state the node reads and writes, and the *durable*
state a crash falls back to. Writes go to the live state and to a journal;
:meth:`SimStorage.sync` replays the journal onto the durable state after
the disk's fsync latency. A crash discards the live state (and any sync
still in flight) and restarts from the durable one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .kernel import Call, SimFuture


class _State:
    """Log + key-value contents; shared by the live and durable copies."""

    __slots__ = ("kv", "log", "first_index")

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.log: list[bytes] = []
        self.first_index = 1

    def copy(self) -> _State:
        other = _State()
        other.kv = dict(self.kv)
        other.log = list(self.log)
        other.first_index = self.first_index
        return other

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.log) - 1

    def apply(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "put":
            self.kv[op[1]] = op[2]
        elif kind == "del":
            self.kv.pop(op[1], None)
        elif kind == "append":
            self.log.extend(op[1])
        elif kind == "truncate":
            del self.log[op[1] - self.first_index :]
        elif kind == "compact":
            del self.log[: op[1] - self.first_index]
            self.first_index = op[1]
        elif kind == "reset":
            self.log = []
            self.first_index = op[1]


def _check_bytes(what: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


class SimStorage:
    """A node's storage in the simulator (implements ``novacron.runtime.Storage``).

    Survives crashes of its node: the simulation keeps one per node id and
    hands it to every incarnation. ``fsync_latency`` is the simulated time a
    :meth:`sync` takes (the *slow disk* fault raises it).
    """

    def __init__(self, env: Any, fsync_latency: float = 0.0) -> None:
        self._env = env
        self.fsync_latency = fsync_latency
        self._live = _State()
        self._durable = _State()
        self._journal: list[tuple[Any, ...]] = []
        self._epoch = 0  # bumped by crash(): in-flight syncs of the old epoch are void
        self._last_commit_at = 0.0  # syncs complete in order even if the latency changes
        self.syncs = 0

    # -- key-value ----------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        return self._live.kv.get(key)

    def put(self, key: str, value: bytes) -> None:
        self._write(("put", str(key), _check_bytes(f"value for key {key!r}", value)))

    def delete(self, key: str) -> None:
        self._write(("del", str(key)))

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._live.kv if k.startswith(prefix))

    # -- log ----------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self._live.first_index

    @property
    def last_index(self) -> int:
        return self._live.last_index

    def append(self, records: Sequence[bytes]) -> int:
        if isinstance(records, (bytes, bytearray, memoryview)):
            raise TypeError("append() takes a sequence of records, not a single bytes object")
        batch = [_check_bytes("log record", r) for r in records]
        self._write(("append", batch))
        return self._live.last_index

    def entries(self, start: int, end: int | None = None) -> list[bytes]:
        live = self._live
        if end is None:
            end = live.last_index + 1
        if start < live.first_index:
            raise ValueError(
                f"entries({start}, ...): index {start} was compacted away (first_index is {live.first_index})"
            )
        if end > live.last_index + 1:
            raise ValueError(f"entries(..., {end}): end is beyond the tail (last_index is {live.last_index})")
        if start > end:
            raise ValueError(f"entries({start}, {end}): start is after end")
        return live.log[start - live.first_index : end - live.first_index]

    def truncate(self, from_index: int) -> None:
        live = self._live
        if not live.first_index <= from_index <= live.last_index + 1:
            raise ValueError(
                f"truncate({from_index}): must be within [{live.first_index}, "
                f"{live.last_index + 1}] (first_index..last_index+1)"
            )
        self._write(("truncate", from_index))

    def compact(self, upto_index: int) -> None:
        live = self._live
        if upto_index > live.last_index + 1:
            raise ValueError(
                f"compact({upto_index}): beyond last_index + 1 ({live.last_index + 1}); "
                "cannot compact records that do not exist"
            )
        if upto_index > live.first_index:  # at or below first_index: already compacted
            self._write(("compact", upto_index))

    def reset(self, first_index: int) -> None:
        if first_index < 1:
            raise ValueError(f"reset({first_index}): log indexes start at 1")
        self._write(("reset", first_index))

    # -- durability ---------------------------------------------------------
    def sync(self) -> SimFuture:
        """Durable once the returned future resolves (after ``fsync_latency``)."""
        journal, self._journal = self._journal, []
        done = SimFuture(self._env)
        now = self._env.now
        at = max(now + self.fsync_latency, self._last_commit_at)
        self._last_commit_at = at
        if at <= now:
            self._commit(journal, self._epoch, done)
        else:
            Call(self._env, at - now, self._commit, (journal, self._epoch, done))
        return done

    def crash(self) -> None:
        """Lose everything not yet synced (called by the simulation on a node crash)."""
        self._epoch += 1
        self._journal = []
        self._live = self._durable.copy()

    def _commit(self, journal: list[tuple[Any, ...]], epoch: int, done: SimFuture) -> None:
        if epoch != self._epoch:
            return  # the node crashed while this fsync was in flight
        for op in journal:
            self._durable.apply(op)
        self.syncs += 1
        done.set_result(None)

    def _write(self, op: tuple[Any, ...]) -> None:
        self._live.apply(op)
        self._journal.append(op)
