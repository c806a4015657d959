"""The event trace and its hash: how a simulation proves it is deterministic.

Every observable outcome (a message delivered or dropped, a transfer done,
a fault applied, a node crashing) is recorded in order. Rare events are
hashed as the ``repr`` of a tuple of plain values (BLAKE2b). The hottest
ones, message deliveries and drops, are numbers (time, kind, source
index, destination index, message-type code; a delivery folds kind,
source and destination into one precomputed per-route key) folded into a
rolling ``hash()`` of tuples: a tenth of the cost, and deterministic because the
hash of ints, floats and tuples of them does not depend on
``PYTHONHASHSEED`` (it does depend on the CPython version: compare hashes
produced by the same interpreter).

Two runs with the same seed must produce the same hash; if they do not,
something read wall-clock time, global randomness or iterated a set of
objects in memory order, and that is a bug.
"""

from __future__ import annotations

import hashlib
from typing import Any


class Tracer:
    def __init__(self, enabled: bool = True, keep: bool = False) -> None:
        self.enabled = enabled
        self.keep = keep
        self.events: list[tuple[Any, ...]] = []  # only when keep=True
        self._count = 0
        #: events recorded by inlined code elsewhere (counted there, for speed)
        self.inline_counter = lambda: 0
        self._hasher = hashlib.blake2b(digest_size=16)
        #: the rolling hash of hot-path events (the network updates it inline)
        self.rolling = 0
        #: turns a numeric event back into readable values (set by the network)
        self.decode: Any = None

    def record(self, event: tuple[Any, ...]) -> None:
        """A rare event (fault, crash, transfer) as a tuple of plain values."""
        if not self.enabled:
            return
        self._count += 1
        self._hasher.update(f"{self.rolling}{event!r}".encode())
        if self.keep:
            self.events.append(event)

    def record_numbers(self, time: float, kind: int, a: int, b: int, c: int) -> None:
        """A hot-path event as numbers (codes and ids are small ints; see :attr:`decode`)."""
        if self.enabled:
            # (kind, a, b) hashed apart: the network precomputes it per route and inlines the rest
            self.rolling = hash((self.rolling, time, hash((kind, a, b)), c))
            self._count += 1
            if self.keep:
                self.events.append((time, kind, a, b, c))

    @property
    def count(self) -> int:
        """Events recorded so far."""
        return self._count + self.inline_counter()

    def hexdigest(self) -> str:
        """Hash of every event recorded so far (recording may continue)."""
        final = self._hasher.copy()
        final.update(str(self.rolling).encode())
        return final.hexdigest()

    def to_dataframe(self):
        """The kept events as a DataFrame (``keep=True`` only): time, kind, details."""
        import pandas as pd

        if not self.keep:
            raise RuntimeError("trace events were not kept; create the Simulation with keep_trace=True")
        decode = self.decode or (lambda e: e)
        rows = []
        for event in self.events:
            if isinstance(event[1], int):
                event = decode(event)
            rows.append({"time": event[0], "kind": event[1], "detail": event[2:]})
        return pd.DataFrame(rows, columns=["time", "kind", "detail"])
