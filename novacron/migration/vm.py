"""The simulator's VM: an abstract memory of page classes and versions, dirtied by a workload.

No page holds bytes: a page is its content class (zero, text-like, random) and a version that a
write bumps. That is all a migration needs to decide what to send and what it costs (the HDE cost
model turns classes into wire bytes and CPU time), so a 64 GiB guest is two small arrays, and the
destination's copy is correct exactly when its classes and versions equal the source's.

The guest runs lazily: it is advanced to the runtime's clock whenever someone looks (a dirty-log
sync, a read, a pause), drawing the writes of the elapsed guest time from the workload with a
generator seeded from the runtime. Lazy advance means no event per write, and the same seed gives
the same migration. On the destination of a post-copy migration the guest runs as a task in ticks
instead, because a write to a page that is not there yet must stall it (see :meth:`start_postcopy`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from novacron.runtime import Runtime
from novacron.transport.dataplane import ContentMix

from .driver import PAGE_SIZE, TEXT, ZERO, GuestState, ModelPages, Pages, RealPages
from .workload import Workload, idle

#: How often the destination guest of a post-copy migration runs a slice of its writes.
POSTCOPY_TICK = 0.005


class ModelVM(GuestState):
    """An abstract guest of ``page_count`` pages (source or destination of a migration)."""

    def __init__(
        self,
        rt: Runtime,
        page_count: int,
        *,
        mix: ContentMix | None = None,
        workload: Workload | None = None,
        page_size: int = PAGE_SIZE,
        empty: bool = False,
    ) -> None:
        if page_count < 1:
            raise ValueError(f"a VM needs at least one page, got page_count={page_count}")
        self.rt = rt
        self.page_count = page_count
        self.page_size = page_size
        self.workload = workload or idle()
        self._rng = np.random.default_rng(rt.random.getrandbits(64))
        if empty:
            self.classes = np.zeros(page_count, dtype=np.uint8)
            self.present = np.zeros(page_count, dtype=bool)
        else:
            mix = mix or ContentMix(zero=0.3, text=0.3, random=0.4)
            shares = np.array([mix.zero, mix.text, mix.random])
            self.classes = self._rng.choice(3, size=page_count, p=shares / shares.sum()).astype(np.uint8)
            self.present = np.ones(page_count, dtype=bool)
        self.versions = np.zeros(page_count, dtype=np.uint32)
        self._dirty = np.zeros(page_count, dtype=bool)
        self._running = not empty
        self._throttle = 0.0
        self._guest_time = 0.0
        self._last = rt.now()
        self.writes = 0  # page writes so far (with repeats)
        # post-copy (destination) state
        self._postcopy = False
        self._waiting: tuple[np.ndarray, object] | None = None
        self.faults = 0
        self.fault_requests = 0
        self.stalled = 0.0

    @property
    def write_fraction(self) -> float:
        return getattr(self.workload, "write_fraction", 0.05)

    # -- the guest -------------------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.rt.now()
        elapsed, self._last = now - self._last, now
        if self._running and not self._postcopy and elapsed > 0:
            self._write(self._draw(elapsed))

    def _draw(self, elapsed: float) -> np.ndarray:
        run = elapsed * (1.0 - self._throttle)
        ids = self.workload.writes(self._guest_time, run, self._rng)
        self._guest_time += run
        return ids

    def _write(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        self.writes += len(ids)
        self.versions[ids] += 1
        became = ids[self.classes[ids] == ZERO]
        self.classes[became] = TEXT  # a written zero page now holds data
        self._dirty[ids] = True

    # -- SourceVM ----------------------------------------------------------------------------
    def sync_dirty_log(self) -> np.ndarray:
        self._advance()
        ids = np.flatnonzero(self._dirty)
        self._dirty[ids] = False
        return ids

    def read(self, ids: np.ndarray) -> ModelPages:
        self._advance()
        return ModelPages(ids, self.classes[ids], self.versions[ids], self.write_fraction)

    def pause(self) -> None:
        self._advance()
        self._running = False

    def resume(self) -> None:
        self._advance()
        self._running = True

    def set_throttle(self, fraction: float) -> None:
        fraction = self.checked_throttle(fraction)
        self._advance()
        self._throttle = fraction

    def digest(self) -> str:
        self._advance()
        return hashlib.sha256(self.classes.tobytes() + self.versions.tobytes()).hexdigest()

    # -- DestinationVM -----------------------------------------------------------------------
    def apply(self, pages: Pages) -> None:
        if isinstance(pages, RealPages):
            raise TypeError("a ModelVM holds no bytes: it takes ModelPages")
        ids = pages.ids
        if self._postcopy:
            # The guest already runs here: a page it holds is newer than any copy in flight.
            fresh = ~self.present[ids]
            ids, classes, versions = ids[fresh], pages.classes[fresh], pages.versions[fresh]
        else:
            classes, versions = pages.classes, pages.versions
        self.classes[ids] = classes
        self.versions[ids] = versions
        self.present[ids] = True
        self._wake()

    def memory(self, first: int, count: int) -> memoryview | None:
        return None  # no bytes: simulated pages always come through apply

    def arrived(self, first: int, count: int) -> None:
        raise TypeError("a ModelVM offers no memory to write pages into (see memory)")

    def start_postcopy(self, missing: np.ndarray, on_fault: Callable[[np.ndarray], None]) -> None:
        self.present[missing] = False
        self._postcopy = True
        self._running = True
        self._last = self.rt.now()
        self.rt.spawn(self._guest(on_fault))

    def missing_count(self) -> int:
        return int(self.page_count - np.count_nonzero(self.present))

    def stats(self) -> dict[str, float]:
        return {"faults": self.faults, "fault_requests": self.fault_requests, "stalled_s": self.stalled}

    async def _guest(self, on_fault: Callable[[np.ndarray], None]) -> None:
        """Run in ticks while pages are missing: a tick's writes to absent pages fault, and the
        vCPU stalls until they arrive (faults of one tick are requested together)."""
        rt = self.rt
        while self._running and self.missing_count():
            ids = np.unique(self._draw(POSTCOPY_TICK))
            absent = ids[~self.present[ids]]
            if len(absent):
                self.faults += len(absent)
                self.fault_requests += 1
                started = rt.now()
                future = rt.create_future()
                self._waiting = (absent, future)
                on_fault(absent)
                await future
                self.stalled += rt.now() - started
            self._write(ids)
            await rt.sleep(POSTCOPY_TICK)
        self._postcopy = False  # every page is here: back to lazy running
        self._last = rt.now()

    def _wake(self) -> None:
        if self._waiting is None:
            return
        absent, future = self._waiting
        if self.present[absent].all():
            self._waiting = None
            if not future.done():  # type: ignore[attr-defined]
                future.set_result(None)  # type: ignore[attr-defined]
