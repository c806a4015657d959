"""HDE, hierarchical delta encoding: fewer bytes on the wire for VM state and bulk transfers.

Layers, each usable on its own:

* **frames** (:mod:`.frame`): every encoded buffer is a checked frame (magic, version, codec,
  lengths, checksums; version 2 writes XXH3 over the payload, version 1 frames are still read);
  :func:`decode` raises :class:`EncodingError` rather than return wrong bytes.
* **codecs** (:mod:`.codecs`): ``none``, ``lz4`` (levels 0-16) and ``zstd`` (its full range,
  negative fast levels to 22), with reused compressor contexts.
* **zero pages**: an all-zero buffer is a header-only marker.
* **deltas** (:mod:`.delta`): XBZRLE against the previous version of a fixed-size page (QEMU's
  migration scheme, :mod:`.xbzrle`) and rsync-style rolling-hash block matching for shifted
  content (:mod:`.rsync`); :class:`PageCache` keeps the versions sent, :class:`PageEncoder` drives
  page-by-page migration.
* **selection** (:mod:`.selector`, :mod:`.learned`): codec and level from a sampled
  compressibility estimate and the link rate, so compression is used only when it makes the
  transfer faster; rule-based by default, a small learned model with ``enable_ml_model``.
* **cost model** (:mod:`.costmodel`): calibrated throughputs and ratios for the simulator.
* **test data** (:mod:`.testdata`): seeded VM-memory-like pages.
"""

from .cache import PageCache
from .codecs import CODECS, LZ4_MAX_LEVEL, LZ4_MIN_LEVEL, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL, Codec, get_codec
from .costmodel import CONTENT_CLASSES, CodecCost, CostModel, DeltaCost
from .delta import encode_delta
from .encoder import Encoded, Encoder
from .errors import EncodingError
from .features import DataFeatures, estimate
from .frame import DEFAULT_MAX_SIZE, HEADER_SIZE, FrameHeader, Kind, decode, encode, is_zero, parse_header
from .pages import PageEncoder, PageStats
from .selector import DEFAULT_CANDIDATES, Choice, RuleSelector, make_selector
from .testdata import PAGE_SIZE, MemoryGenerator

__all__ = [
    "CODECS",
    "CONTENT_CLASSES",
    "DEFAULT_CANDIDATES",
    "DEFAULT_MAX_SIZE",
    "HEADER_SIZE",
    "LZ4_MAX_LEVEL",
    "LZ4_MIN_LEVEL",
    "PAGE_SIZE",
    "ZSTD_MAX_LEVEL",
    "ZSTD_MIN_LEVEL",
    "Choice",
    "Codec",
    "CodecCost",
    "CostModel",
    "DataFeatures",
    "DeltaCost",
    "Encoded",
    "Encoder",
    "EncodingError",
    "FrameHeader",
    "Kind",
    "MemoryGenerator",
    "PageCache",
    "PageEncoder",
    "PageStats",
    "RuleSelector",
    "decode",
    "encode",
    "encode_delta",
    "estimate",
    "get_codec",
    "is_zero",
    "make_selector",
    "parse_header",
]
