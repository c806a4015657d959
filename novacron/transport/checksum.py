"""Chunk checksums, named on the wire so that two ends with different libraries agree.

CRC-32 (the zlib/gzip polynomial) computed by ISA-L (``isal``, a dependency:
carry-less multiply folding, 50-60 GB/s on data in cache on a VPCLMULQDQ
core) is preferred; the ``crc32c`` package's hardware CRC32C (~20 GB/s) and
zlib's own CRC-32 (~2.5 GB/s, always there, same values as ISA-L's) are the
fallbacks. A receiver asked to verify an algorithm it does not have says so
instead of guessing. Every function here releases the GIL on large buffers.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

NONE, CRC32, CRC32C = 0, 1, 2

ALGORITHMS: dict[int, Callable[[bytes | memoryview], int]] = {CRC32: zlib.crc32}
_fast_crc32 = False
try:
    from isal.isal_zlib import crc32 as _isal_crc32

    ALGORITHMS[CRC32] = _isal_crc32
    _fast_crc32 = True
except ImportError:  # pragma: no cover - isal is a dependency
    pass
try:
    from crc32c import crc32c as _crc32c

    ALGORITHMS[CRC32C] = _crc32c
except ImportError:  # pragma: no cover - depends on the environment
    pass

#: what this node uses when it sends
PREFERRED = CRC32 if _fast_crc32 or CRC32C not in ALGORITHMS else CRC32C


def compute(algorithm: int, data: bytes | memoryview) -> int:
    try:
        return ALGORITHMS[algorithm](data)
    except KeyError:
        raise ValueError(f"checksum algorithm {algorithm} is not available on this node") from None
