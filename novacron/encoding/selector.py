"""Adaptive codec selection: compress only when it makes the transfer faster.

Compression trades CPU time for wire time. On a 100 Gbit/s datacenter link no compressor keeps up
and the fastest transfer sends the bytes as they are; on a 10 Mbit/s WAN link even zstd-19 pays for
itself on text. The selector decides per buffer from two inputs:

* the data: a sampled estimate of its class shares (:mod:`.features`), which the cost model turns
  into expected throughputs and ratio (a buffer that is entirely zero becomes a zero-page marker);
* the link rate, in **bits** per second like the topology's link bandwidths.

Transfer model, per candidate codec and level, for ``n`` bytes with class shares ``s_c``::

    compress   = sum_c s_c * n / compress_rate_c
    wire       = sum_c s_c * n * ratio_c * 8 / link_bps
    decompress = sum_c s_c * n / decompress_rate_c
    pipelined (default):  time = max(compress, wire, decompress)
    serial:               time = compress + wire + decompress

Pipelined is the default because the transfer path is chunked (AMST moves 512 KiB chunks): while
chunk k is on the wire, chunk k+1 is being compressed and chunk k-1 decompressed, so the slowest
stage sets the pace. The serial model fits one small buffer sent on its own. The rule picks the
fastest candidate, but keeps ``none`` unless compressing saves at least ``min_gain`` of the time,
so model error never makes a transfer slower for a marginal gain.

This rule-based selector is the default and the baseline; ``enable_ml_model=True`` switches to
the learned selector in :mod:`.learned`, which is evaluated against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .costmodel import CodecCost, CostModel
from .features import DataFeatures, estimate
from .frame import HEADER_SIZE

if TYPE_CHECKING:
    from .learned import LearnedSelector

#: The (codec, level) pairs both selectors choose among: stored, lz4 fast, and zstd from its fast
#: negative levels to 19 (20-22 cost far more CPU for a percent or two).
DEFAULT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("none", 0),
    ("lz4", 0),
    ("zstd", -5),
    ("zstd", 1),
    ("zstd", 3),
    ("zstd", 9),
    ("zstd", 19),
)


@dataclass(frozen=True)
class Choice:
    """A selector's decision and the modelled times behind it."""

    codec: str
    level: int
    seconds: float  # modelled transfer time with this choice
    raw_seconds: float  # modelled transfer time sending the bytes uncompressed
    ratio: float  # expected frame bytes / original bytes
    zero: bool = False  # the buffer is all zero: send a zero-page marker, no codec

    @property
    def speedup(self) -> float:
        return self.raw_seconds / self.seconds if self.seconds > 0 else float("inf")


def blend(cost_model: CostModel, codec: str, level: int, shares: Mapping[str, float]) -> CodecCost:
    """The cost of data made of content classes in ``shares``: times add up, ratios average."""
    parts = [(share, cost_model.cost(codec, level, content)) for content, share in shares.items() if share]  # type: ignore[arg-type]
    total = sum(share for share, _ in parts)
    if not parts:
        return CodecCost(float("inf"), float("inf"), 1.0)
    return CodecCost(
        total / sum(share / c.compress_bytes_per_s for share, c in parts),
        total / sum(share / c.decompress_bytes_per_s for share, c in parts),
        sum(share * c.ratio for share, c in parts) / total,
    )


def stage_seconds(cost: CodecCost, nbytes: int, link_bps: float) -> tuple[float, float, float]:
    """``(compress, wire, decompress)`` seconds to move ``nbytes`` with ``cost`` over ``link_bps``."""
    if link_bps <= 0:
        raise ValueError(f"link_bps must be > 0, got {link_bps}")
    return (
        nbytes / cost.compress_bytes_per_s,
        nbytes * cost.ratio * 8 / link_bps,
        nbytes / cost.decompress_bytes_per_s,
    )


def transfer_seconds(stages: tuple[float, float, float], pipelined: bool = True) -> float:
    """Combine stage times: the slowest stage when pipelined, their sum when serial."""
    return max(stages) if pipelined else sum(stages)


def zero_choice(features: DataFeatures, link_bps: float) -> Choice:
    """The choice for an all-zero buffer: a header-only zero frame."""
    return Choice("none", 0, HEADER_SIZE * 8 / link_bps, features.size * 8 / link_bps, 0.0, zero=True)


@dataclass
class RuleSelector:
    """The default selector: the candidate with the least modelled transfer time (module docstring)."""

    cost_model: CostModel = field(default_factory=CostModel.load)
    candidates: Sequence[tuple[str, int]] = DEFAULT_CANDIDATES
    pipelined: bool = True
    min_gain: float = 0.05

    def predict(self, features: DataFeatures, link_bps: float, codec: str, level: int) -> tuple[float, float]:
        """Modelled ``(seconds, ratio)`` for sending data like ``features`` with ``codec`` at ``level``."""
        cost = blend(self.cost_model, codec, level, features.shares())
        return transfer_seconds(stage_seconds(cost, features.size, link_bps), self.pipelined), cost.ratio

    def choose(self, data: bytes | memoryview | DataFeatures, link_bps: float) -> Choice:
        """Codec and level for ``data`` (or its pre-computed features) over a ``link_bps`` link."""
        features = data if isinstance(data, DataFeatures) else estimate(data)
        if features.all_zero:
            return zero_choice(features, link_bps)
        raw_seconds, raw_ratio = self.predict(features, link_bps, "none", 0)
        best = Choice("none", 0, raw_seconds, raw_seconds, raw_ratio)
        for codec, level in self.candidates:
            seconds, ratio = self.predict(features, link_bps, codec, level)
            if seconds < best.seconds:
                best = Choice(codec, level, seconds, raw_seconds, ratio)
        if best.seconds > raw_seconds * (1 - self.min_gain):
            return Choice("none", 0, raw_seconds, raw_seconds, raw_ratio)
        return best


def make_selector(
    enable_ml_model: bool = False, cost_model: CostModel | None = None
) -> RuleSelector | LearnedSelector:
    """The rule-based selector, or the shipped learned one when ``enable_ml_model`` is True."""
    cost_model = cost_model or CostModel.load()
    if enable_ml_model:
        from .learned import LearnedSelector

        return LearnedSelector.load(cost_model=cost_model)
    return RuleSelector(cost_model)
