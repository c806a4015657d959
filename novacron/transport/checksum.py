"""Chunk checksums, named on the wire so that two ends with different libraries agree.

XXH3-64 (``xxhash``, a dependency: ~46 GB/s on data in cache on the AMD EPYC hosts of
benchmarks/README.md) is preferred. CRC-32 (the zlib/gzip polynomial; ISA-L's carry-less multiply
folding, ``isal``, also a dependency: 50-60 GB/s with AVX-512, 9-11 GB/s without; zlib's own
~2.5 GB/s, same values) and the ``crc32c`` package's hardware CRC32C (~20 GB/s) are still
verified when a sender names them. A receiver asked to verify an algorithm it does not have says
so instead of guessing. Every function here releases the GIL on large buffers.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from xxhash import xxh3_64_intdigest

NONE, CRC32, CRC32C, XXH3 = 0, 1, 2, 3

ALGORITHMS: dict[int, Callable[[bytes | memoryview], int]] = {CRC32: zlib.crc32, XXH3: xxh3_64_intdigest}
try:
    from isal.isal_zlib import crc32 as _isal_crc32

    ALGORITHMS[CRC32] = _isal_crc32
except ImportError:  # pragma: no cover - isal is a dependency
    pass
try:
    from crc32c import crc32c as _crc32c

    ALGORITHMS[CRC32C] = _crc32c
except ImportError:  # pragma: no cover - depends on the environment
    pass

#: what this node uses when it sends
PREFERRED = XXH3


def compute(algorithm: int, data: bytes | memoryview) -> int:
    try:
        return ALGORITHMS[algorithm](data)
    except KeyError:
        raise ValueError(f"checksum algorithm {algorithm} is not available on this node") from None
