"""The hypervisor-driver interface: what a migration engine needs from a VM, on each side.

The engines never touch memory themselves; they ask the driver. That keeps them the same for the
simulator's abstract VM (:class:`~.vm.ModelVM`: page ids, versions and content classes, so a 64 GiB
guest is cheap) and for the real backend's memory buffer (``novacron.backends.vm.BufferVM``: a
bytearray dirtied by a workload thread). A libvirt/QEMU driver would implement the same two
protocols on top of the dirty log and the guest's RAM.

Dirty tracking follows KVM's dirty log: ``sync_dirty_log`` returns the pages written since the
last sync and clears their bits atomically with respect to the guest, so a write that races with a
read of its page is always seen by a later sync (never lost).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from novacron.encoding.frame import crc32_checksum
from novacron.runtime import WriteLog

#: Content classes of a page (the cost model's classes).
ZERO, TEXT, RANDOM = 0, 1, 2
CLASS_NAMES = ("zero", "text", "random")
PAGE_SIZE = 4096


@dataclass(frozen=True)
class ModelPages:
    """Pages of an abstract VM: who they are, what they hold (class) and which version."""

    ids: np.ndarray
    classes: np.ndarray
    versions: np.ndarray
    write_fraction: float = 0.05

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class RealPages:
    """Pages of a real VM: ids and their bytes, one row per page (a copy, or for a run of pages
    a view of the guest's memory: see ``log``), or, ``in_place``, the guest's whole memory with
    page ``ids[i]`` in row ``ids[i]``: scattered pages the encoder then copies once, straight
    into its batch (a copy here first had cost the stop-and-copy a second pass over them)."""

    ids: np.ndarray
    data: np.ndarray  # shape (n, page_size), uint8; ``in_place``: (guest pages, page_size)
    #: for pages read in place from a running guest (``data`` is its memory): its write log over
    #: ``data``'s bytes, which lets the transport skip re-reading pieces nobody wrote
    log: WriteLog | None = None
    in_place: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, which: np.ndarray | slice | int) -> np.ndarray:
        """The bytes of pages ``which`` (positions in ``ids``)."""
        return self.data[self.ids[which]] if self.in_place else self.data[which]

    def copy_rows(self, which: np.ndarray, out: np.ndarray) -> None:
        """Copy pages ``which`` (positions in ``ids``) into ``out``, each once.

        The rows are bounds-checked here so that ``np.take`` can run with ``mode="clip"``: with
        ``out`` and its default ``mode="raise"``, numpy gathers into a temporary array and then
        copies that into ``out``, which took a 600-page stop-and-copy 1.4-2.8 ms instead of
        0.6 (a fresh temporary is zero-filled and page-faulted on every call)."""
        rows = np.asarray(self.ids[which] if self.in_place else which)
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= len(self.data)):
            low, high = int(rows.min()), int(rows.max())
            raise IndexError(f"page rows {low}..{high} outside 0..{len(self.data) - 1}")
        np.take(self.data, rows, axis=0, out=out, mode="clip")


Pages = ModelPages | RealPages


def page_run(ids: np.ndarray) -> tuple[int, int] | None:
    """``(first, count)`` when ``ids`` are consecutive pages in increasing order (one span of
    memory: one copy, or one transfer placed straight into guest memory), else None."""
    if not len(ids):
        return None
    first, last = int(ids[0]), int(ids[-1])
    if last - first + 1 != len(ids) or not bool(np.all(np.diff(ids) == 1)):
        return None
    return first, len(ids)


#: Block size of :func:`memory_digest`.
DIGEST_BLOCK = 1 << 20


def memory_digest(memory: bytes | bytearray | memoryview) -> str:
    """A digest of guest memory cheap enough to take during the downtime: SHA-256 over the CRC-32
    of every 1 MiB block (CRC-32 runs at memory speed with ISA-L; SHA-256 of a 4 GiB guest would
    add seconds to the downtime). It detects any accidental difference with probability
    1 - 2^-32 per differing block; it is not meant to resist a forger."""
    view = memoryview(memory).cast("B")
    crcs = [crc32_checksum(view[i : i + DIGEST_BLOCK]) for i in range(0, len(view), DIGEST_BLOCK)]
    return hashlib.sha256(struct.pack(f"<{len(crcs)}I", *crcs) + struct.pack("<Q", len(view))).hexdigest()


class GuestState:
    """What both built-in VMs keep about their guest: running or paused, and the share of its
    vCPU time auto-converge takes away."""

    _running: bool = False
    _throttle: float = 0.0

    @property
    def running(self) -> bool:
        return self._running

    @property
    def throttle(self) -> float:
        return self._throttle

    @staticmethod
    def checked_throttle(fraction: float) -> float:
        if not 0 <= fraction < 1:
            raise ValueError(f"throttle must be in [0, 1), got {fraction}")
        return fraction


class SourceVM(Protocol):
    """The VM being migrated away, as the engine sees it."""

    page_size: int
    page_count: int

    @property
    def running(self) -> bool: ...

    @property
    def throttle(self) -> float:
        """Share of vCPU time taken away by auto-converge (0 = none)."""

    def sync_dirty_log(self) -> np.ndarray:
        """Page ids written since the last sync (sorted, unique); clears them."""

    def read(self, ids: np.ndarray) -> Pages:
        """The current content of pages ``ids``."""

    def pause(self) -> None:
        """Stop the guest (no writes after this returns)."""

    def resume(self) -> None: ...

    def set_throttle(self, fraction: float) -> None: ...

    def digest(self) -> str:
        """A hash of the whole memory (compare with the destination's at switch-over)."""


class DestinationVM(Protocol):
    """The VM being built on the destination."""

    page_size: int
    page_count: int

    def apply(self, pages: Pages) -> None:
        """Write ``pages`` into memory (and mark them present, for post-copy)."""

    def memory(self, first: int, count: int) -> memoryview | None:
        """Writable bytes of pages ``first .. first+count-1``, for a transfer to land in
        directly (no copy), or None where the driver cannot offer them (an abstract VM, or a
        guest already running here: post-copy); the pages then come through :meth:`apply`."""

    def arrived(self, first: int, count: int) -> None:
        """Pages written in place through :meth:`memory` are complete (mark them present)."""

    def digest(self) -> str: ...

    def resume(self) -> None:
        """Start the guest here (pre-copy: after the last page arrived)."""

    def start_postcopy(self, missing: np.ndarray, on_fault: Callable[[np.ndarray], None]) -> None:
        """Start the guest with pages ``missing`` not yet here; a write to one of them stalls
        its vCPU and calls ``on_fault(ids)`` until :meth:`apply` brings the page."""

    def missing_count(self) -> int: ...

    def stats(self) -> dict[str, float]:
        """Post-copy figures: faults, vCPU seconds stalled on them, and the like."""
