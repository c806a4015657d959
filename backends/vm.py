"""The real backend's VM: a memory buffer (anonymous mmap) dirtied by a workload thread, with a dirty log.

This is the built-in hypervisor driver (``novacron.migration.driver``) for real runs: the guest's
memory is an anonymous ``mmap`` of pages, the guest is a thread that writes to it at the workload's rate,
and dirty tracking is a bitmap the writer sets *after* writing a page, under a lock that
``sync_dirty_log`` also takes. So a page written while the engine reads it is always marked dirty
again and re-sent; no write is ever lost between rounds (the same guarantee KVM's dirty log gives).

The guest also keeps a *write log* for senders of its memory (:class:`WriteLog`): a version per
1 MiB region, made odd before a write there and even after it (a seqlock). A run of pages read in
place carries it, so the stream that sends the run straight from guest memory re-reads only the
pieces written while they were on their way (see ``RecordStream.send``'s ``volatile``). Ordering:
the guest thread bumps and writes in that order while holding the GIL or across a GIL hand-off,
and readers read versions holding it, so a reader that saw a write's bytes also sees its first
bump (each GIL hand-off is a full memory barrier, whatever the CPU's own ordering).

On the destination of a post-copy migration the thread checks every page it is about to write:
one that has not arrived yet stalls the thread, which asks for it through the event loop
(``on_fault`` runs on the loop thread) and waits until :meth:`apply` brings it.
"""

from __future__ import annotations

import asyncio
import itertools
import mmap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from novacron.encoding.testdata import MemoryGenerator
from novacron.hosting.spec import VMSpec
from novacron.migration.driver import (
    PAGE_SIZE,
    GuestState,
    ModelPages,
    Pages,
    RealPages,
    memory_digest,
    page_run,
)
from novacron.migration.messages import MigrationBegin
from novacron.migration.workload import Workload, idle
from novacron.transport.dataplane import ContentMix

#: Pages per region of the write log: 1 MiB, a stream's checksum piece.
LOG_REGION_PAGES = 256


@dataclass(frozen=True)
class WriteLog:
    """The guest's write log over its memory from byte ``base`` on
    (implements :class:`novacron.runtime.WriteLog`)."""

    versions: np.ndarray  # per region; odd while the guest writes there
    base: int
    region_bytes: int

    def version(self, start: int, stop: int) -> int | None:
        if stop <= start:
            return 0
        first = (self.base + start) // self.region_bytes
        last = (self.base + stop - 1) // self.region_bytes
        if first == last:  # the common case (a stream's pieces are regions): no array ops
            one = int(self.versions[first])
            return None if one & 1 else one
        seen = self.versions[first : last + 1].copy()  # one read of each, then judged
        return None if (seen & 1).any() else int(seen.sum())


class BufferVM(GuestState):
    """A guest of ``page_count`` real pages (see the module docstring). Call :meth:`close`."""

    def __init__(
        self,
        page_count: int,
        *,
        mix: ContentMix | None = None,
        workload: Workload | None = None,
        page_size: int = PAGE_SIZE,
        seed: int = 0,
        tick: float = 0.01,
        empty: bool = False,
        prefault: bool = False,
    ) -> None:
        """``tick``: how often the guest thread wakes to do the writes due since its last
        wake-up. The guest shares this process (and its GIL) with the migration it is measured
        against, which a real guest on its own vCPUs does not, and each wake-up costs it
        ~0.1-0.2 ms of CPU here: at 2 ms the guest alone took 9% of a core for 3,000 writes/s,
        at 10 ms 3-4%.

        ``prefault`` touches every page now, as QEMU's ``-mem-prealloc`` does, so that the
        first write of each page during an incoming migration does not take a page fault."""
        if page_count < 1:
            raise ValueError(f"a VM needs at least one page, got page_count={page_count}")
        self.page_count = page_count
        self.page_size = page_size
        self.workload = workload or idle()
        self.tick = tick
        # Anonymous memory, zero until written: pages never written cost nothing (a bytearray
        # would zero-fill, and fault in, the whole guest up front).
        self.buffer = mmap.mmap(-1, page_count * page_size)
        self.rows = np.frombuffer(self.buffer, dtype=np.uint8).reshape(page_count, page_size)
        self._rng = np.random.default_rng(seed)
        if prefault:
            self.rows[:, 0] = 0
        if not empty:
            self._fill(mix or ContentMix(zero=0.3, text=0.3, random=0.4), seed)
        self.present = np.full(page_count, not empty, dtype=bool)
        self._dirty = np.zeros(page_count, dtype=bool)
        self._versions = np.zeros(-(-page_count // LOG_REGION_PAGES), dtype=np.uint64)  # the write log
        self._lock = threading.Condition()
        self._running = not empty
        self._throttle = 0.0
        self._postcopy = False
        self._on_fault: Callable[[np.ndarray], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self.writes = 0
        self.faults = 0
        self.fault_requests = 0
        self.stalled = 0.0
        self.written_here = np.zeros(page_count, dtype=bool)  # pages this guest wrote since start
        self._thread = threading.Thread(target=self._guest, name="buffer-vm-guest", daemon=True)
        self._thread.start()

    def _fill(self, mix: ContentMix, seed: int) -> None:
        """Pages of each class; text pages are drawn from a pool of generated ones (generating
        every page would dominate start-up for large VMs)."""
        gen = MemoryGenerator(seed, self.page_size)
        shares = np.array([mix.zero, mix.text, mix.random])
        classes = self._rng.choice(3, size=self.page_count, p=shares / shares.sum())
        text = np.flatnonzero(classes == 1)
        pool = np.frombuffer(b"".join(gen.page("text") for _ in range(min(256, len(text)))), np.uint8)
        if len(text):
            pool = pool.reshape(-1, self.page_size)
            self.rows[text] = pool[self._rng.integers(0, len(pool), len(text))]
            # make each text page distinct: stamp its id in its first bytes
            self.rows[text, :8] = np.frombuffer(text.astype("<u8").tobytes(), np.uint8).reshape(-1, 8)
        rand = np.flatnonzero(classes == 2)
        self.rows[rand] = self._rng.integers(0, 256, (len(rand), self.page_size), dtype=np.uint8)

    def close(self) -> None:
        """Stop the guest thread (idempotent). The memory stays readable until garbage collected."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._thread.join(timeout=5)

    def __enter__(self) -> BufferVM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the guest thread --------------------------------------------------------------------
    def _guest(self) -> None:
        if self.workload.mean_rate() == 0:  # a guest that never writes has nothing to simulate
            self._stop.wait()  # (ticking anyway cost the migrating node CPU and GIL hand-offs)
            return
        guest_time = 0.0
        last = time.monotonic()
        write_fraction = getattr(self.workload, "write_fraction", 0.05)
        span = max(1, int(write_fraction * self.page_size))
        while not self._stop.is_set():
            time.sleep(self.tick)  # (an Event.wait with a timeout costs twice the CPU)
            now = time.monotonic()
            elapsed, last = now - last, now
            with self._lock:
                running, throttle = self._running, self._throttle
            if not running:
                continue
            run = elapsed * (1.0 - throttle)
            ids = np.unique(self.workload.writes(guest_time, run, self._rng))
            guest_time += run
            if not len(ids):
                continue
            if self._postcopy:
                self._wait_for(ids)
            offsets = self._rng.integers(0, self.page_size - span + 1, len(ids)).tolist()
            values = np.frombuffer(self._rng.bytes(len(ids) * span), np.uint8).reshape(len(ids), span)
            with self._lock:
                if not self._running:
                    continue  # paused meanwhile: these writes never happened
                regions = np.unique(ids // LOG_REGION_PAGES)
                self._versions[regions] += 1  # odd: a write in progress (before the data)
                # one slice per page (a fancy-indexed 2-D write cost ~8 us per page written)
                for row, page, offset in zip(values, ids.tolist(), offsets, strict=True):
                    self.rows[page, offset : offset + span] = row
                self._versions[regions] += 1  # even again: written
                self._dirty[ids] = True  # after the data: a racing reader sees the bit later
                self.written_here[ids] = True
                self.writes += len(ids)

    def _wait_for(self, ids: np.ndarray) -> None:
        with self._lock:
            absent = ids[~self.present[ids]]
        if not len(absent):
            return
        self.faults += len(absent)
        self.fault_requests += 1
        started = time.monotonic()
        if self._loop is not None and self._on_fault is not None:
            self._loop.call_soon_threadsafe(self._on_fault, absent)
        with self._lock:
            self._lock.wait_for(lambda: self._stop.is_set() or bool(self.present[absent].all()))
        self.stalled += time.monotonic() - started

    # -- SourceVM ----------------------------------------------------------------------------
    def sync_dirty_log(self) -> np.ndarray:
        with self._lock:
            ids = np.flatnonzero(self._dirty)
            self._dirty[ids] = False
        return ids

    def read(self, ids: np.ndarray) -> RealPages:
        """The pages, read in place: a view of guest memory for a run of consecutive pages
        (round 0 is all runs), else the whole memory with the pages' ids (``in_place``). Their
        bytes may change under the reader; that is fine, because the encoder copies each page
        once into the batch it checksums (or the transport copies a run piece by piece as it
        sends it, see ``EncodedBatch.volatile``), and a page written in between is dirty again
        and goes in a later round."""
        run = page_run(ids)
        if run is not None:
            log = WriteLog(self._versions, run[0] * self.page_size, LOG_REGION_PAGES * self.page_size)
            return RealPages(ids, self.rows[run[0] : run[0] + run[1]], log)
        return RealPages(ids, self.rows, in_place=True)

    def read_rows(self, ids: np.ndarray) -> np.ndarray:
        return self.rows[ids]

    def pause(self) -> None:
        with self._lock:
            self._running = False

    def resume(self) -> None:
        with self._lock:
            self._running = True

    def set_throttle(self, fraction: float) -> None:
        fraction = self.checked_throttle(fraction)
        with self._lock:
            self._throttle = fraction

    def digest(self) -> str:
        with self._lock:
            return memory_digest(self.buffer)

    # -- DestinationVM ---------------------------------------------------------------------------
    def apply(self, pages: Pages) -> None:
        if isinstance(pages, ModelPages):
            raise TypeError("a BufferVM takes RealPages (bytes), not the simulator's ModelPages")
        with self._lock:
            ids, data = pages.ids, pages.data
            if self._postcopy:  # the guest runs here: a page it holds is newer than any copy in flight
                fresh = ~self.present[ids]
                ids, data = ids[fresh], data[fresh]
            run = page_run(ids)
            if run is not None:
                self.rows[run[0] : run[0] + run[1]] = data  # a run of pages: one memcpy
            else:
                self.rows[ids] = data
            self.present[ids] = True
            self._lock.notify_all()

    def memory(self, first: int, count: int) -> memoryview | None:
        with self._lock:
            if self._postcopy or self._running or first < 0 or count < 1 or first + count > self.page_count:
                return None  # a running guest's pages must come through apply (it skips newer ones)
        return memoryview(self.buffer)[first * self.page_size : (first + count) * self.page_size]

    def arrived(self, first: int, count: int) -> None:
        with self._lock:
            self.present[first : first + count] = True
            self._lock.notify_all()

    def start_postcopy(self, missing: np.ndarray, on_fault: Callable[[np.ndarray], None]) -> None:
        """Resume here with ``missing`` pages absent; must be called on the event loop's thread."""
        self._loop = asyncio.get_running_loop()
        self._on_fault = on_fault
        with self._lock:
            self.present[missing] = False
            self._postcopy = True
            self._running = True

    def missing_count(self) -> int:
        with self._lock:
            return int(self.page_count - np.count_nonzero(self.present))

    def stats(self) -> dict[str, float]:
        return {"faults": self.faults, "fault_requests": self.fault_requests, "stalled_s": self.stalled}


class BufferHypervisor:
    """The real backend's hypervisor for VM hosting (:class:`novacron.hosting.VMHost`): guests
    are :class:`BufferVM` s. A new guest's memory is filled (a used guest's mix of zero, text-like
    and random pages, ~2.7 s per GiB here) in a worker thread, so the node's event loop, its
    heartbeats and consensus, never wait for it."""

    def __init__(self, seed: int = 0) -> None:
        self._seeds = itertools.count(seed)

    async def create(self, spec: VMSpec) -> BufferVM:
        seed = next(self._seeds)
        return await asyncio.to_thread(BufferVM, spec.pages, workload=spec.workload(), seed=seed)

    def receive(self, spec: VMSpec, begin: MigrationBegin) -> BufferVM:
        return BufferVM(begin.pages, page_size=begin.page_size, empty=True, workload=spec.workload())

    def destroy(self, vm: BufferVM) -> None:
        vm.close()
