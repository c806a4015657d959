"""HDE for migration batches: zero pages, XBZRLE deltas of re-sent pages, one compressed frame.

A batch is the unit the engines hand to AMST. Each page in it goes one of three ways:

* ``ZERO``: an all-zero page travels as its id only (QEMU does the same by default);
* ``DELTA``: a page sent before, whose previous version is still in the sender's cache, goes as an
  XBZRLE frame against that version (decoded against the destination's current copy, which is
  that version);
* ``FULL``: every other page; all of them are concatenated and sent as **one** HDE frame, with the
  codec and level the selector predicts fastest for these bytes over this link (often none on a
  fast link). One frame per batch, not per page, keeps per-page Python work off the hot path and
  compresses better.

Zero detection and deltas are only used when the settings enable them, and a delta only when
encoding it is faster than sending the page raw over the link (the same rule HDE applies to
compression: encode only when it makes the transfer faster).

Real batches are bytes (:func:`encode_real` / :func:`decode_real`, wire format below). Simulated
batches are a :class:`~novacron.runtime.VirtualPayload` whose size and CPU time the calibrated cost
model predicts from the pages' content classes, with exactly the layout's byte counts, so the
simulator charges what the real encoder would send.

Wire format (little-endian)::

    magic "NCMB" | version u8 | flags u8 | pad 2 | count u32 | deltas u32 | page_size u32
    ids      u32 x count       (zero pages first, then delta pages, then full pages)
    kinds    u8  x count
    lengths  u32 x deltas      (each delta frame's length)
    delta frames, then one HDE frame holding the full pages back to back
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field

import numpy as np

from novacron.encoding import CostModel, EncodingError, decode, encode
from novacron.encoding.cache import PageCache
from novacron.encoding.codecs import get_codec
from novacron.encoding.delta import encode_delta
from novacron.encoding.features import DataFeatures, estimate
from novacron.encoding.frame import HEADER_SIZE, FrameHeader, Kind, checksum, parse_header
from novacron.encoding.selector import RuleSelector
from novacron.runtime import Payload, VirtualPayload, WriteLog

from .driver import CLASS_NAMES, RANDOM, TEXT, ZERO, ModelPages, RealPages, page_run
from .settings import MigrationSettings

MAGIC = b"NCMB"
VERSION = 2
_HEAD = struct.Struct("<4sBB2xIII")
#: Header flag: the raw full-page frame carries no checksum of its own (the transport's suffices).
FLAG_RAW_UNCHECKED = 0x01
KIND_ZERO, KIND_DELTA, KIND_FULL = 0, 1, 2
#: Beyond this share of changed bytes XBZRLE's output approaches the page itself: send it full.
DELTA_GIVE_UP_RATIO = 0.9


#: Batches of fewer page bytes are encoded (source) and written (destination) on the event
#: loop instead of a worker thread. Handing work to a thread and resuming after it cost 1-6 ms
#: in a loopback stop-and-copy of ~2 MiB (thread wake-ups and the GIL going back and forth),
#: against ~1 ms for the work itself; and a small batch is usually the downtime's.
OFFLOAD_MIN_BYTES = 4 << 20


class BatchError(ValueError):
    """A migration batch that does not decode (names the field that is wrong)."""


@dataclass
class BatchStats:
    """What the encoder did with one batch (summed into the migration's report)."""

    pages: int = 0
    zero: int = 0
    delta: int = 0
    full: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cpu_seconds: float = 0.0
    codec: str = "none"

    def add(self, other: BatchStats) -> None:
        for name in ("pages", "zero", "delta", "full", "bytes_in", "bytes_out", "cpu_seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class EncodedBatch:
    payload: Payload
    stats: BatchStats
    #: ``(first page, count)`` when the payload is nothing but the raw bytes of consecutive
    #: pages (no zero, delta or compressed page among them): it then travels without the batch
    #: layout, and the destination can receive it straight into guest memory.
    run: tuple[int, int] | None = None
    #: the payload is a live view of the guest's memory (a run read in place), which the guest
    #: may write while it is sent: the transport must send it as volatile data (with the
    #: guest's write log when it keeps one)
    volatile: bool | WriteLog = False


_MiB = 1 << 20


def wire_bytes(count: int, deltas: int, delta_bytes: int, full_bytes: int) -> int:
    """Size of a batch on the wire (the layout in the module docstring)."""
    return _HEAD.size + 5 * count + 4 * deltas + delta_bytes + HEADER_SIZE + full_bytes


@dataclass
class _ModelCache:
    """The sender's XBZRLE cache for an abstract VM: LRU over page ids, bounded in pages.

    A page is cached iff it was among the last ``capacity`` pages put; arrays instead of an
    ordered dict, so a million-page round costs a few vector operations."""

    page_count: int
    capacity: int
    _stamp: np.ndarray = field(init=False)
    _next: int = 0

    def __post_init__(self) -> None:
        self._stamp = np.full(self.page_count, -1, dtype=np.int64)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        stamps = self._stamp[ids]
        return (stamps >= 0) & (stamps >= self._next - self.capacity)

    def put(self, ids: np.ndarray) -> None:
        self._stamp[ids] = np.arange(self._next, self._next + len(ids))
        self._next += len(ids)


class BatchEncoder:
    """Encodes the batches of one migration (it owns the sender's delta cache)."""

    def __init__(
        self,
        settings: MigrationSettings,
        page_count: int,
        page_size: int,
        cost_model: CostModel | None = None,
        buffers: list[bytearray] | None = None,
    ) -> None:
        self.settings = settings
        self.page_size = page_size
        self.cost_model = cost_model or CostModel.load()
        self.selector = RuleSelector(self.cost_model, pipelined=settings.pipeline > 1)
        self._free = buffers if buffers is not None else []  # batch buffers to reuse (see release)
        self._real = False  # real pages encoded yet (see reserve)
        capacity = settings.xbzrle_cache_bytes // page_size
        self._model_cache = _ModelCache(page_count, capacity)
        self._cache = PageCache(settings.xbzrle_cache_bytes)

    # -- decisions shared by both paths ---------------------------------------------------------
    def delta_ratio(self, write_fraction: float) -> float:
        """Expected XBZRLE frame bytes per page byte when ``write_fraction`` of it changed
        (linear through the calibrated points, extrapolated past the last)."""
        rows = sorted((d.changed, d.ratio) for d in self.cost_model.deltas if d.method == "xbzrle")
        xs, ys = [r[0] for r in rows], [r[1] for r in rows]
        if write_fraction <= xs[-1]:
            return float(np.interp(write_fraction, xs, ys))
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        return ys[-1] + slope * (write_fraction - xs[-1])

    def delta_pays(self, link_bps: float, write_fraction: float = 0.05) -> bool:
        """Deltas on: encoding a page is faster than sending it raw, and it shrinks enough."""
        if not self.settings.delta:
            return False
        cost = self.cost_model.delta("xbzrle", min(write_fraction, 0.1))
        encode_s = self.page_size / cost.encode_bytes_per_s
        raw_s = self.page_size * 8 / link_bps
        return encode_s < raw_s and self.delta_ratio(write_fraction) < DELTA_GIVE_UP_RATIO

    def _choose(self, features: DataFeatures, link_bps: float) -> tuple[str, int]:
        if not self.settings.compression or features.size == 0:
            return "none", 0
        choice = self.selector.choose(features, link_bps)
        return (choice.codec, choice.level) if not choice.zero else ("none", 0)

    # -- simulated pages ------------------------------------------------------------------------
    def encode_model(self, pages: ModelPages, link_bps: float, *, runs: bool = True) -> EncodedBatch:
        """Predict the batch's wire size and CPU time from its pages' classes (cost model);
        ``runs`` as for :meth:`encode_real`."""
        s, page, cm = self.settings, self.page_size, self.cost_model
        ids, classes = pages.ids, pages.classes
        zero = (classes == ZERO) if s.zero_pages else np.zeros(len(ids), dtype=bool)
        delta = np.zeros(len(ids), dtype=bool)
        if self.delta_pays(link_bps, pages.write_fraction):
            delta = ~zero & self._model_cache.contains(ids)
        full = ~zero & ~delta
        counts = {c: int(np.count_nonzero(full & (classes == c))) for c in (ZERO, TEXT, RANDOM)}
        n_full = sum(counts.values())
        stats = BatchStats(pages=len(ids), zero=int(zero.sum()), delta=int(delta.sum()), full=n_full)
        cpu = stats.zero * page / cm.zero_scan_bytes_per_s
        full_bytes = 0
        if n_full:
            shares = {CLASS_NAMES[c]: n / n_full for c, n in counts.items()}
            features = DataFeatures(
                n_full * page, False, shares["zero"], shares["text"], shares["random"], 0.0, 1.0
            )
            codec, level = self._choose(features, link_bps)
            stats.codec = codec if codec == "none" else f"{codec}-{level}"
            for c, n in counts.items():
                if n and codec != "none":
                    cost = cm.cost(codec, level, CLASS_NAMES[c])  # type: ignore[arg-type]
                    full_bytes += round(n * page * cost.ratio)
                    cpu += n * page / cost.compress_bytes_per_s
                else:
                    full_bytes += n * page
        delta_bytes = round(stats.delta * page * self.delta_ratio(pages.write_fraction))
        if stats.delta:
            cpu += stats.delta * page / cm.delta("xbzrle", min(pages.write_fraction, 0.1)).encode_bytes_per_s
        self._model_cache.put(ids[~zero] if s.delta else ids[:0])
        stats.bytes_in = len(ids) * page
        run = page_run(ids) if runs and n_full == len(ids) and stats.codec == "none" else None
        if run is not None:
            stats.bytes_out = stats.bytes_in
        else:
            stats.bytes_out = wire_bytes(len(ids), stats.delta, delta_bytes, full_bytes)
        stats.cpu_seconds = cpu
        return EncodedBatch(VirtualPayload(stats.bytes_out, meta=pages), stats, run)

    def _raw_section(self, tables: list[bytes], pages: RealPages, rows: np.ndarray) -> memoryview:
        """The batch with its full pages stored raw: one allocation, each page copied once
        (straight from the guest's memory when ``pages`` were read in place), checksummed in place."""
        head = sum(len(t) for t in tables)
        size = len(rows) * self.page_size
        view = self._buffer(head + HEADER_SIZE + size)
        pos = 0
        for t in tables:
            view[pos : pos + len(t)] = t
            pos += len(t)
        self._gather(view, head + HEADER_SIZE, pages, rows)
        checked = self.settings.checksum_raw_pages
        check = checksum(view[head + HEADER_SIZE :]) if checked else 0
        header = FrameHeader(Kind.PLAIN, get_codec("none"), 0, size, size, size, check).pack()
        if not checked:  # tell the receiver not to check what the transport already checked
            struct.pack_into("<B", view, 5, FLAG_RAW_UNCHECKED)
        view[head : head + HEADER_SIZE] = header
        return view

    def _gather(self, view: memoryview, offset: int, pages: RealPages, rows: np.ndarray) -> None:
        """Copy pages ``rows`` (positions in ``pages``) into ``view`` at ``offset``, each once."""
        size = len(rows) * self.page_size
        out = np.frombuffer(view.obj, np.uint8, count=size, offset=offset).reshape(len(rows), self.page_size)  # type: ignore[call-overload]
        run = None if pages.in_place else page_run(rows)
        if run is not None:
            out[:] = pages.data[run[0] : run[0] + run[1]]  # a run of pages: one memcpy
        else:
            pages.copy_rows(rows, out)

    def _buffer(self, size: int) -> memoryview:
        """A batch buffer of ``size`` bytes, reused when one is free: a fresh 32 MiB allocation
        costs ~8,000 page faults on first touch, more than copying the pages into it. A new one
        is only as big as asked (rounded up to 1 MiB): batches with the layout are the small
        ones now (dirty pages, the stop-and-copy), and a 32 MiB buffer for a 3 MiB stop-and-copy
        had cost 14 ms of zero-filling during the guest's downtime."""
        fitting = [i for i, buf in enumerate(self._free) if len(buf) >= size]
        if fitting:  # the smallest that fits (the pool is kept biggest first)
            return memoryview(self._free.pop(fitting[-1]))[:size]
        return memoryview(bytearray(-(-size // _MiB) * _MiB))[:size]

    def reserve(self, pages: int) -> None:
        """Have a batch buffer ready for ``pages`` raw pages (a batch's worth at most), so
        that the stop-and-copy, where every millisecond is downtime, need not allocate one: a
        fresh 2 MiB buffer cost ~3 ms there (zero-filled, a page fault per 4 KiB). Only once
        real pages have been encoded: a simulated VM needs no buffers."""
        if not self._real or pages <= 0:
            return
        pages = min(pages, max(1, self.settings.batch_bytes // self.page_size))
        size = wire_bytes(pages, 0, 0, pages * self.page_size)
        if not any(len(buf) >= size for buf in self._free):
            self.release(self._buffer(size))

    def release(self, payload: Payload) -> None:
        """Hand back a batch's buffer once its transfer is complete (the runtime holds no
        reference to it any more), so the next batch reuses it; the biggest four are kept, none
        over two batches' worth (a batch the source grew after runs of raw pages, which then
        held other pages, is a one-off: its buffer is not worth keeping)."""
        if isinstance(payload, memoryview) and isinstance(payload.obj, bytearray):
            if len(payload.obj) > 2 * self.settings.batch_bytes + _MiB:
                return
            self._free.append(payload.obj)
            self._free.sort(key=len, reverse=True)
            del self._free[4:]

    # -- real pages -------------------------------------------------------------------------------
    def encode_real(
        self, pages: RealPages, link_bps: float, *, runs: bool = True, bare_checked: bool = False
    ) -> EncodedBatch:
        """Encode real page bytes into the wire format of the module docstring, or, with ``runs``,
        as a bare run of raw pages where they are one (see :meth:`bare_run`; ``bare_checked``:
        the caller asked it already, and it said no)."""
        if runs and not bare_checked and (bare := self.bare_run(pages, link_bps)) is not None:
            return bare
        return self._encode_layout(pages, link_bps, runs=runs)

    def bare_run(self, pages: RealPages, link_bps: float) -> EncodedBatch | None:
        """The batch as a bare run of raw pages, if that is how it goes: consecutive pages, none
        of them zero, no delta encoding on this link and no codec that pays for these bytes.
        Else None (encode it with :meth:`encode_real`'s batch layout).

        A run is not copied: its payload is ``pages.data`` itself, which for a run read in
        place is the guest's memory, marked volatile for the transport, which then copies it
        piece by piece as it sends (a page the guest writes meanwhile may arrive old, new or
        torn; it is dirty again and goes in a later round, as with any snapshot taken while the
        guest runs). Snapshotting the batch here instead cost twice the CPU. Deciding costs one
        read of each page's first word and a sample of eight pages: cheap enough for the event
        loop, which the source uses (handing it to a worker thread cost more in hand-offs)."""
        span = page_run(pages.ids)
        if span is None or self.delta_pays(link_bps):  # (deltas: per-page work and cache updates)
            return None
        self._real = True
        if pages.in_place:  # its rows, as a view
            pages = RealPages(pages.ids, pages.data[span[0] : span[0] + span[1]], pages.log)
        n = len(pages.ids)
        if self._codec_for(pages, np.arange(n), link_bps)[0] != "none":  # (eight pages: first)
            return None
        if self.settings.zero_pages and find_zero_pages(pages.data).any():
            return None
        payload = memoryview(np.ascontiguousarray(pages.data)).cast("B")
        stats = BatchStats(pages=n, full=n, bytes_in=n * self.page_size, bytes_out=len(payload), codec="none")
        return EncodedBatch(payload, stats, span, volatile=pages.log or True)

    def _codec_for(self, pages: RealPages, full_rows: np.ndarray, link_bps: float) -> tuple[str, int]:
        """Codec and level for the full pages ``full_rows``, judged on a sample of eight of them."""
        if not len(full_rows):
            return "none", 0
        sample = pages.rows(full_rows[:: max(1, len(full_rows) // 8)][:8])
        features = estimate(memoryview(np.ascontiguousarray(sample)).cast("B"))
        # the sample stands for all the full pages
        return self._choose(dataclasses.replace(features, size=len(full_rows) * self.page_size), link_bps)

    def _encode_layout(self, pages: RealPages, link_bps: float, *, runs: bool) -> EncodedBatch:
        """The general path: zero pages, deltas (which also fill the delta cache), a codec; still a
        bare run (``runs``) if every page turned out full and raw (e.g. a run whose pages were all
        new to the delta cache)."""
        s = self.settings
        self._real = True
        n = len(pages.ids)
        if pages.in_place and (span := page_run(pages.ids)) is not None:  # a run: its rows, as a view
            pages = RealPages(pages.ids, pages.data[span[0] : span[0] + span[1]])
        zero = np.zeros(n, dtype=bool)
        if s.zero_pages:
            zero = find_zero_pages(pages.data, pages.ids if pages.in_place else None)
        use_delta = self.delta_pays(link_bps)
        delta = np.zeros(n, dtype=bool)
        frames: list[bytes] = []
        if use_delta:
            for i in np.flatnonzero(~zero):
                pid = int(pages.ids[i])
                old = self._cache.get(pid)
                page = pages.rows(i).tobytes()
                if old is not None:
                    frames.append(encode_delta(old, page, "xbzrle", "none"))
                    delta[i] = True
                self._cache.put(pid, page)
        full = ~zero & ~delta
        full_rows = np.flatnonzero(full)
        codec, level = self._codec_for(pages, full_rows, link_bps)
        order = np.concatenate([np.flatnonzero(zero), np.flatnonzero(delta), full_rows])
        kinds = np.concatenate(
            [
                np.full(int(zero.sum()), KIND_ZERO, np.uint8),
                np.full(int(delta.sum()), KIND_DELTA, np.uint8),
                np.full(len(full_rows), KIND_FULL, np.uint8),
            ]
        )
        tables = [
            _HEAD.pack(MAGIC, VERSION, 0, n, len(frames), self.page_size),
            pages.ids[order].astype("<u4").tobytes(),
            kinds.tobytes(),
            np.array([len(f) for f in frames], dtype="<u4").tobytes(),
            *frames,
        ]
        run = page_run(pages.ids) if runs and codec == "none" and len(full_rows) == n else None
        if run is not None:
            payload = memoryview(np.ascontiguousarray(pages.data)).cast("B")
        elif codec == "none":
            payload = self._raw_section(tables, pages, full_rows)
        else:
            full_data = np.ascontiguousarray(pages.rows(full_rows)).reshape(-1)
            payload = b"".join([*tables, encode(memoryview(full_data), codec, level, eliminate_zero=False)])
        stats = BatchStats(
            pages=n,
            zero=int(zero.sum()),
            delta=int(delta.sum()),
            full=int(full.sum()),
            bytes_in=n * self.page_size,
            bytes_out=len(payload),
            codec=codec if codec == "none" else f"{codec}-{level}",
        )
        volatile: bool | WriteLog = False if run is None else (pages.log or True)
        return EncodedBatch(payload, stats, run, volatile=volatile)


def find_zero_pages(data: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Which rows of ``data`` (pages x page bytes), or which of its ``rows``, are all zero.

    Only pages whose first 8 bytes are zero are scanned whole: a page of data almost never
    starts with eight zero bytes, so for most memory this reads one cache line per page instead
    of every byte (a full scan cost ~0.09 s per GiB, more than copying the pages)."""
    words = data.view(np.uint64).reshape(len(data), -1)
    if rows is None:
        rows = slice(None)
    else:
        rows = np.asarray(rows)
    zero = words[rows, 0] == 0
    maybe = np.flatnonzero(zero)
    if len(maybe):
        which = maybe if isinstance(rows, slice) else rows[maybe]
        zero[maybe] = ~words[which].any(axis=1)
    return zero


def decode_real(
    payload: bytes | memoryview, page_count: int, page_size: int, base
) -> tuple[RealPages, RealPages, RealPages]:
    """Parse a real batch into ``(zero pages, full pages, delta pages)``; ``base(ids)`` gives the
    destination's current bytes of pages (the versions the deltas apply to).

    Raises :class:`BatchError` naming the field for any batch that is malformed, and lets
    :class:`~novacron.encoding.EncodingError` from a corrupt frame through as a BatchError too:
    nothing is returned unless every page decoded and checked."""
    view = memoryview(payload)
    if len(view) < _HEAD.size:
        raise BatchError(f"batch of {len(view)} bytes is shorter than its {_HEAD.size}-byte header")
    magic, version, flags, count, deltas, size = _HEAD.unpack_from(view, 0)
    if magic != MAGIC:
        raise BatchError(f"bad batch magic {bytes(magic)!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise BatchError(f"unsupported batch version {version} (this node speaks {VERSION})")
    if flags & ~FLAG_RAW_UNCHECKED:
        raise BatchError(f"unknown batch flags {flags:#04x}")
    if size != page_size:
        raise BatchError(f"batch page_size {size} differs from the VM's {page_size}")
    if deltas > count:
        raise BatchError(f"batch claims {deltas} delta pages out of {count}")
    pos = _HEAD.size
    need = pos + 5 * count + 4 * deltas
    if len(view) < need:
        raise BatchError(f"batch truncated: {len(view)} bytes, its tables alone need {need}")
    ids = np.frombuffer(view, dtype="<u4", count=count, offset=pos).astype(np.int64)
    kinds = np.frombuffer(view, dtype=np.uint8, count=count, offset=pos + 4 * count)
    lengths = np.frombuffer(view, dtype="<u4", count=deltas, offset=pos + 5 * count).astype(np.int64)
    pos = need
    if count and int(ids.max()) >= page_count:
        raise BatchError(f"batch names page {int(ids.max())}, the VM has {page_count} pages")
    if not np.all(np.diff(kinds.astype(np.int16)) >= 0) or (count and int(kinds.max()) > KIND_FULL):
        raise BatchError("batch page kinds are not zero, delta, full in that order")
    n_zero = int(np.count_nonzero(kinds == KIND_ZERO))
    n_delta = int(np.count_nonzero(kinds == KIND_DELTA))
    if n_delta != deltas:
        raise BatchError(f"batch header says {deltas} delta pages, its kinds say {n_delta}")
    delta_end = pos + int(lengths.sum())
    if delta_end > len(view):
        raise BatchError(f"batch truncated inside its delta frames ({len(view)} < {delta_end} bytes)")
    try:
        delta_ids = ids[n_zero : n_zero + n_delta]
        bases = base(delta_ids) if n_delta else np.empty((0, page_size), np.uint8)
        delta_rows = np.empty((n_delta, page_size), dtype=np.uint8)
        for i, length in enumerate(lengths):
            page = decode(view[pos : pos + length], base=bases[i].tobytes(), max_size=page_size)
            if len(page) != page_size:
                raise BatchError(f"delta frame {i} decodes to {len(page)} bytes, not one page")
            delta_rows[i] = np.frombuffer(page, np.uint8)
            pos += int(length)
        full = _decode_full(
            view[pos:],
            max(page_size, (count - n_zero - n_delta) * page_size),
            bool(flags & FLAG_RAW_UNCHECKED),
        )
    except EncodingError as exc:
        raise BatchError(f"corrupt page data in batch: {exc}") from exc
    n_full = count - n_zero - n_delta
    if len(full) != n_full * page_size:
        raise BatchError(f"full-page frame holds {len(full)} bytes, expected {n_full} pages of {page_size}")
    full_rows = np.frombuffer(full, np.uint8).reshape(n_full, page_size)
    zero_pages = RealPages(ids[:n_zero], np.zeros((n_zero, page_size), np.uint8))
    return zero_pages, RealPages(ids[n_zero + n_delta :], full_rows), RealPages(delta_ids, delta_rows)


def _decode_full(frame: memoryview, max_size: int, unchecked: bool) -> bytes | memoryview:
    """The full pages' frame: raw frames are returned as a view (no copy), checked in place
    unless the sender relied on the transport's own checksums (``unchecked``)."""
    header = parse_header(frame, max_size=max_size)
    if header.kind == Kind.PLAIN and header.codec.codec_id == 0:
        body = frame[HEADER_SIZE:]
        if not unchecked and header.check(body) != header.checksum:  # payload == result: any version
            raise EncodingError("checksum mismatch: the decoded bytes are not the ones that were encoded")
        return body
    return decode(frame, max_size=max_size)
