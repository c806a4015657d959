"""Delta frames: a buffer encoded against the previous version the receiver already holds.

Two methods, for two kinds of change:

* ``xbzrle`` (:mod:`.xbzrle`, QEMU's scheme) for fixed-size pages written in place, which is how
  guest memory changes between migration rounds;
* ``rsync`` (:mod:`.rsync`, rsync's rolling-checksum block matching) for content that moved:
  insertions and deletions in files, logs and serialised state.

Either way the op stream is then compressed by the codec (delta first, entropy coding second: the
hierarchy in "hierarchical delta encoding") and framed with checksums of both the base and the
payload (:mod:`.frame`), so decoding against the wrong base raises instead of returning garbage.
An all-zero new version becomes a zero frame, and a delta that would not be smaller than the data
falls back to a plain frame (QEMU sends such pages raw).
"""

from __future__ import annotations

from typing import Literal

from . import rsync, xbzrle
from .frame import VERSION, Kind, build_frame, encode, is_zero

DeltaMethod = Literal["xbzrle", "rsync"]


def encode_delta(
    old: bytes | memoryview,
    new: bytes | memoryview,
    method: DeltaMethod = "xbzrle",
    codec: str = "zstd",
    level: int | None = None,
    *,
    block_size: int | None = None,
    version: int = VERSION,
) -> bytes:
    """Frame ``new`` as a delta against ``old``; decode it with ``decode(frame, base=old)``.

    ``block_size`` applies to ``rsync`` only (default: about sqrt(len(old)), see
    :func:`.rsync.default_block_size`). XBZRLE needs ``old`` and ``new`` of the same size.
    ``version`` is the frame version to write (see :func:`.frame.encode`).
    """
    if is_zero(new):
        return encode(new, version=version)
    if method == "xbzrle":
        ops, kind = xbzrle.encode(old, new), Kind.XBZRLE
    elif method == "rsync":
        ops, kind = rsync.encode(old, new, block_size), Kind.RSYNC
    else:
        raise ValueError(f"unknown delta method {method!r}; use 'xbzrle' or 'rsync'")
    if ops is None or len(ops) >= len(new):
        return encode(new, codec, level, version=version)
    return build_frame(kind, ops, result=new, base=old, codec=codec, level=level, version=version)
