"""Reassembly buffers, reused across transfers.

Writing into fresh memory costs a page fault per 4 KiB (the kernel zeroes
each page first): for a 1 GiB transfer that is most of the receiver's CPU.
Like iperf3's buffer or a hypervisor's guest memory, buffers are therefore
kept and reused for the next transfer of the same size, within a byte
budget (least recently used out first). That is why a payload handed to a
receive handler is valid only during the call (the runtime contract says
the same of transfers): copy it with ``bytes()`` to keep it.
"""

from __future__ import annotations

import mmap
from collections import OrderedDict
from collections.abc import Callable

#: below this a plain bytearray is cheaper than a memory map
MMAP_THRESHOLD = 1 << 20


def allocate(size: int) -> bytearray | mmap.mmap:
    """A zeroed buffer; large ones are anonymous maps, paged in as they are written."""
    return mmap.mmap(-1, size) if size >= MMAP_THRESHOLD else bytearray(size)


class BufferPool:
    """Buffers by exact size, at most ``budget`` bytes kept in all.

    ``allocator`` makes new buffers (default :func:`allocate`); the real
    backend passes one that pre-faults large maps in a helper thread. Not
    thread-safe: callers from several threads hold their own lock.
    """

    def __init__(self, budget: int, *, allocator: Callable[[int], bytearray | mmap.mmap] = allocate) -> None:
        if budget < 0:
            raise ValueError(f"buffer budget must be >= 0, got {budget}")
        self.budget = budget
        self._allocate = allocator
        self._free: OrderedDict[int, list[bytearray | mmap.mmap]] = OrderedDict()
        self._kept = 0
        self.reused = 0
        self.allocated = 0

    @property
    def kept_bytes(self) -> int:
        return self._kept

    def take(self, size: int) -> bytearray | mmap.mmap:
        """A buffer of at least ``size`` bytes (its content is whatever the last user left):
        one of exactly that size if kept, else the smallest kept one up to twice as big.
        Callers use its first ``size`` bytes. (Transfers of one size each, as AMST's chunks of
        a bulk stream are, reuse exactly; a live migration's batches of dirty pages differ in
        size every time, and its stop-and-copy batch, moved while the guest is paused, took a
        fresh buffer and a page fault per 4 KiB of it.)"""
        free = self._free.get(size)
        if not free and size >= MMAP_THRESHOLD:
            fits = [kept for kept in self._free if size < kept <= 2 * size]
            if fits:
                free = self._free[min(fits)]
        if free:
            buffer = free.pop()
            self._kept -= len(buffer)
            self.reused += 1
            if not free:
                del self._free[len(buffer)]
            return buffer
        self.allocated += 1
        return self._allocate(size)

    def give_back(self, buffer: bytearray | mmap.mmap) -> None:
        size = len(buffer)
        if size > self.budget or size < MMAP_THRESHOLD:
            return  # small ones are cheap to allocate; huge ones would blow the budget
        while self._kept + size > self.budget and self._free:
            old_size, old = next(iter(self._free.items()))
            old.pop()
            self._kept -= old_size
            if not old:
                del self._free[old_size]
        self._free.setdefault(size, []).append(buffer)
        self._free.move_to_end(size)
        self._kept += size
