"""The event trace and its hash: how a simulation proves it is deterministic.

Every observable outcome (a message delivered or dropped, a transfer done,
a fault applied, a node crashing) is recorded as a tuple of plain values.
The hash covers their ``repr`` in order, in batches, so recording costs an
append. Two runs with the same seed must produce the same hash; if they do
not, something read wall-clock time, global randomness or iterated a set of
objects in memory order, and that is a bug.
"""

from __future__ import annotations

import hashlib
from typing import Any

_BATCH = 4096


class Tracer:
    def __init__(self, enabled: bool = True, keep: bool = False) -> None:
        self.enabled = enabled
        self.keep = keep
        self.events: list[tuple[Any, ...]] = []  # only when keep=True
        self.count = 0
        self._hasher = hashlib.blake2b(digest_size=16)
        self._batch: list[tuple[Any, ...]] = []

    def record(self, event: tuple[Any, ...]) -> None:
        if not self.enabled:
            return
        batch = self._batch
        batch.append(event)
        if len(batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self.count += len(self._batch)
            self._hasher.update(repr(self._batch).encode())
            if self.keep:
                self.events.extend(self._batch)
            self._batch = []

    def hexdigest(self) -> str:
        """Hash of every event recorded so far (recording may continue)."""
        self._flush()
        return self._hasher.hexdigest()

    def to_dataframe(self):
        """The kept events as a DataFrame (``keep=True`` only): time, kind, details."""
        import pandas as pd

        self._flush()
        if not self.keep:
            raise RuntimeError("trace events were not kept; create the Simulation with keep_trace=True")
        rows = [{"time": e[0], "kind": e[1], "detail": e[2:]} for e in self.events]
        return pd.DataFrame(rows, columns=["time", "kind", "detail"])
