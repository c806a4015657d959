"""XBZRLE: XOR-based zero run-length encoding of a page against its previous version.

The scheme of QEMU's live migration (``migration/xbzrle.c``, "XBZRLE" in the QEMU migration docs):
when a dirty page is re-sent, XOR it with the copy sent last time; the XOR is zero wherever the
guest did not write, so the page becomes alternating runs of unchanged ("zero") and changed
("non-zero") bytes. The format is QEMU's::

    page  = zrun nzrun | zrun nzrun page
    zrun  = length                       (ULEB128: bytes left unchanged)
    nzrun = length byte...               (ULEB128, then the *new* bytes of the changed run)

A trailing unchanged run is implied. Storing the new bytes (not the XOR) keeps them compressible
when the delta is compressed afterwards, which is the "hierarchical" part of HDE. As in QEMU, a
page whose encoding would not be smaller than the page itself is sent raw instead (:func:`encode`
returns None).

One refinement over QEMU's encoder: unchanged gaps of at most :data:`MERGE_GAP` bytes inside a
changed region are sent as changed bytes, because ending and restarting a run costs two length
bytes, more than the gap. Runs are found with numpy (one vectorised compare per page).
"""

from __future__ import annotations

import numpy as np

from .errors import EncodingError
from .varint import get_uleb128, put_uleb128

#: Unchanged gaps this short are cheaper to send as literal bytes than as two run lengths.
MERGE_GAP = 2


def changed_runs(old: bytes | memoryview, new: bytes | memoryview) -> list[tuple[int, int]]:
    """``(start, end)`` of each changed run of ``new`` against ``old``, gaps <= MERGE_GAP merged."""
    if len(old) != len(new):
        raise ValueError(f"XBZRLE compares same-sized pages, got {len(old)} and {len(new)} bytes")
    changed = np.flatnonzero(np.frombuffer(old, np.uint8) != np.frombuffer(new, np.uint8))
    if changed.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(changed) > MERGE_GAP + 1)
    starts = np.concatenate((changed[:1], changed[breaks + 1]))
    ends = np.concatenate((changed[breaks] + 1, changed[-1:] + 1))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def encode(old: bytes | memoryview, new: bytes | memoryview) -> bytes | None:
    """The XBZRLE encoding of ``new`` against ``old``; None when it would not be smaller than ``new``.

    An unchanged page encodes to ``b""``.
    """
    new = memoryview(new)
    out = bytearray()
    previous_end = 0
    for start, end in changed_runs(old, new):
        put_uleb128(out, start - previous_end)
        put_uleb128(out, end - start)
        out += new[start:end]
        previous_end = end
        if len(out) >= len(new):
            return None
    return bytes(out)


def apply(old: bytes | memoryview, delta: bytes | memoryview, size: int) -> bytes:
    """Rebuild the new page from ``old`` and an XBZRLE ``delta``; every run is bounds-checked."""
    if len(old) != size:
        raise EncodingError(f"xbzrle delta is for a {size}-byte page, the base has {len(old)} bytes")
    page = bytearray(old)
    pos = 0
    i = 0
    while i < len(delta):
        zero_run, i = get_uleb128(delta, i, "unchanged-run length")
        changed_run, i = get_uleb128(delta, i, "changed-run length")
        pos += zero_run
        if changed_run == 0:
            raise EncodingError("corrupt xbzrle delta: empty changed run")
        if pos + changed_run > size:
            raise EncodingError(
                f"corrupt xbzrle delta: a run ends at byte {pos + changed_run} of a {size}-byte page"
            )
        if i + changed_run > len(delta):
            raise EncodingError("truncated xbzrle delta: a changed run runs past the end of the data")
        page[pos : pos + changed_run] = delta[i : i + changed_run]
        i += changed_run
        pos += changed_run
    return bytes(page)
