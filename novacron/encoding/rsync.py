"""rsync-style block matching: a delta that survives insertions and deletions.

XBZRLE compares byte ``i`` with byte ``i``, so one inserted byte makes everything after it
"changed". The rsync algorithm (A. Tridgell and P. Mackerras, "The rsync algorithm", ANU TR-CS-96-05,
1996) finds the old version's blocks *wherever* they now sit: cut the old version into fixed-size
blocks, index them by a weak rolling checksum and a strong hash, slide a window over the new version
one byte at a time, and emit COPY(offset, length) where a block matches and LITERAL bytes where none
does.

The weak checksum is rsync's Adler-32-like pair over a window ``X[k..l]`` (M = 2**16)::

    a(k, l) = sum(X[i])                 mod M
    b(k, l) = sum((l - i + 1) * X[i])   mod M
    s(k, l) = a + M * b

rsync rolls it forward one byte at a time in C; here numpy computes it at *every* offset at once from
two prefix sums (``b`` at offset k is ``(k + L) * a - (S2[k + L] - S2[k])`` with ``S2`` the prefix
sum of ``i * X[i]``; uint32 wrap-around is harmless because 2**16 divides 2**32). As in rsync, a
16-bit tag of the weak sum filters offsets first (here one numpy gather over all offsets), then the
weak sum itself; Python visits only the offsets that pass, confirms each with the strong hash
(BLAKE2b, 8 bytes, ``hashlib``), and advances past a match by a whole block, which is rsync's greedy
scan. The strong hash, rather than comparing bytes, is what lets a :class:`Signature` of the old
version stand in for the old version itself. Adjacent COPYs of consecutive old blocks merge into
one. Unlike rsync, the old version's final partial block is not indexed, so up to
``block_size - 1`` trailing bytes may be sent as a literal.

Op stream format: ``0x00 len bytes`` (LITERAL) and ``0x01 offset len`` (COPY), lengths ULEB128.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from .errors import EncodingError
from .varint import get_uleb128, put_uleb128

_LITERAL, _COPY = 0, 1
MIN_BLOCK, MAX_BLOCK = 16, 8192


@dataclass(frozen=True)
class Copy:
    """Copy ``length`` bytes from ``offset`` of the old version."""

    offset: int
    length: int


@dataclass(frozen=True)
class Literal:
    """Bytes of the new version that match no old block."""

    data: bytes


Op = Copy | Literal


def default_block_size(old_length: int) -> int:
    """rsync's rule of thumb, a block of about sqrt(length), as a power of two in [16, 8192].

    Smaller blocks find more matches around each change but index more blocks; sqrt balances the
    per-block signature cost against the bytes re-sent around each edit. A 4 KiB page gets 64.
    """
    if old_length <= MIN_BLOCK**2:
        return MIN_BLOCK
    return int(min(MAX_BLOCK, 2 ** round(math.log2(math.sqrt(old_length)))))


def weak_checksums(data: bytes | memoryview, block_size: int) -> np.ndarray:
    """rsync's weak checksum of the window starting at every offset (``len - block_size + 1`` values).

    Computed in uint32 with wrap-around: only the sums mod 2**16 are kept, and 2**16 divides 2**32.
    """
    n = len(data)
    if n < block_size:
        return np.empty(0, dtype=np.uint32)
    x = np.frombuffer(data, dtype=np.uint8).astype(np.uint32)
    s1 = np.zeros(n + 1, dtype=np.uint32)
    s2 = np.zeros(n + 1, dtype=np.uint32)
    np.cumsum(x, out=s1[1:])
    np.cumsum(x * np.arange(n, dtype=np.uint32), out=s2[1:])
    end = np.arange(block_size, n + 1, dtype=np.uint32)  # k + L for each window start k
    a = s1[block_size:] - s1[:-block_size]
    b = end * a - (s2[block_size:] - s2[:-block_size])
    return (a & 0xFFFF) | ((b & 0xFFFF) << 16)


def _strong(block: bytes | memoryview) -> bytes:
    return hashlib.blake2b(block, digest_size=8).digest()


@dataclass(frozen=True)
class Signature:
    """What rsync's receiver sends: per block of the old version, its weak and strong checksums.

    Computing ops needs only this, not the old bytes, so a peer holding the old version can
    send its signature and let the sender compute the delta (rsync's own arrangement); HDE's
    page cache holds the old bytes and just computes it locally.
    """

    block_size: int
    blocks: dict[int, dict[bytes, int]]  # weak -> strong -> block number (first occurrence)
    weak: np.ndarray  # the distinct weak sums, sorted
    tags: np.ndarray  # rsync's first-level filter: 2**16 flags, set at the 16-bit tags of the weak sums


def _tag(weak: np.ndarray) -> np.ndarray:
    return (weak ^ (weak >> 16)) & 0xFFFF


def signature(old: bytes | memoryview, block_size: int | None = None) -> Signature:
    """The block signature of ``old`` (block size: :func:`default_block_size` unless given)."""
    old = memoryview(old)
    block = block_size or default_block_size(len(old))
    if block < 1:
        raise ValueError(f"block_size must be positive, got {block}")
    weak = weak_checksums(old, block)[::block]
    blocks: dict[int, dict[bytes, int]] = {}
    for number, value in enumerate(weak.tolist()):
        blocks.setdefault(value, {}).setdefault(_strong(old[number * block : (number + 1) * block]), number)
    tags = np.zeros(1 << 16, dtype=bool)
    tags[_tag(weak)] = True
    return Signature(block, blocks, np.unique(weak), tags)


def ops(
    old: bytes | memoryview | Signature, new: bytes | memoryview, block_size: int | None = None
) -> list[Op]:
    """The COPY/LITERAL ops that rebuild ``new`` from ``old`` (rsync's greedy block matching).

    ``old`` may be the old bytes or their :class:`Signature`.
    """
    sig = old if isinstance(old, Signature) else signature(old, block_size)
    block, new = sig.block_size, memoryview(new)
    new_weak = weak_checksums(new, block)
    # rsync's search order: 16-bit tag (vectorised over every offset), then weak sum, then strong hash.
    tagged = np.flatnonzero(sig.tags[_tag(new_weak)])
    if len(tagged):
        slot = np.minimum(np.searchsorted(sig.weak, new_weak[tagged]), len(sig.weak) - 1)
        tagged = tagged[sig.weak[slot] == new_weak[tagged]]
    candidates, weak_at = tagged.tolist(), new_weak[tagged].tolist()
    out: list[Op] = []
    literal_start = 0
    j = 0
    while j < len(candidates):
        at = candidates[j]
        number = sig.blocks[weak_at[j]].get(_strong(new[at : at + block]))
        if number is None:
            j += 1
            continue
        if at > literal_start:
            out.append(Literal(bytes(new[literal_start:at])))
        previous = out[-1] if out else None
        if isinstance(previous, Copy) and previous.offset + previous.length == number * block:
            out[-1] = Copy(previous.offset, previous.length + block)
        else:
            out.append(Copy(number * block, block))
        literal_start = at + block
        j = bisect.bisect_left(candidates, literal_start, j + 1)
    if literal_start < len(new):
        out.append(Literal(bytes(new[literal_start:])))
    return out


def pack(delta_ops: list[Op]) -> bytes:
    """Serialise ops into the op stream (see the module docstring)."""
    out = bytearray()
    for op in delta_ops:
        if isinstance(op, Copy):
            out.append(_COPY)
            put_uleb128(out, op.offset)
            put_uleb128(out, op.length)
        else:
            out.append(_LITERAL)
            put_uleb128(out, len(op.data))
            out += op.data
    return bytes(out)


def encode(
    old: bytes | memoryview | Signature, new: bytes | memoryview, block_size: int | None = None
) -> bytes:
    """The rsync-style op stream of ``new`` against ``old``."""
    return pack(ops(old, new, block_size))


def apply(old: bytes | memoryview, delta: bytes | memoryview, size: int) -> bytes:
    """Rebuild the new version from ``old`` and an op stream, never producing more than ``size`` bytes."""
    out = bytearray()
    i = 0
    while i < len(delta):
        tag = delta[i]
        i += 1
        if tag == _COPY:
            offset, i = get_uleb128(delta, i, "copy offset")
            length, i = get_uleb128(delta, i, "copy length")
            if offset + length > len(old):
                raise EncodingError(
                    f"corrupt rsync delta: copy of {offset}+{length} from a {len(old)}-byte base"
                )
            piece = old[offset : offset + length]
        elif tag == _LITERAL:
            length, i = get_uleb128(delta, i, "literal length")
            if i + length > len(delta):
                raise EncodingError("truncated rsync delta: a literal runs past the end of the data")
            piece = delta[i : i + length]
            i += length
        else:
            raise EncodingError(f"corrupt rsync delta: unknown op tag {tag}")
        if len(out) + length > size:
            raise EncodingError(f"corrupt rsync delta: output grows past the declared {size} bytes")
        out += piece
    return bytes(out)
