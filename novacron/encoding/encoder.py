"""HDE in one object: zero-page elimination, deltas against a known base, adaptive codec choice.

This is what the transfer path calls. Given a buffer (and, when the receiver already holds an older
version of it, that ``base``), it:

1. sends an all-zero buffer as a zero-page marker;
2. with a base and ``enable_delta``, encodes a delta: XBZRLE when the sizes match (pages written
   in place), rsync-style block matching when they differ (content that moved);
3. compresses with the configured codec and level, or, when the link rate is known, with the
   codec and level the selector predicts to give the fastest transfer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .costmodel import CostModel
from .delta import encode_delta
from .frame import DEFAULT_MAX_SIZE, decode, encode
from .selector import Choice, RuleSelector, make_selector

if TYPE_CHECKING:
    from .learned import LearnedSelector


@dataclass(frozen=True)
class Encoded:
    """A frame and how it was made (``choice`` is None when no link rate was given)."""

    frame: bytes
    original_length: int
    choice: Choice | None = None
    delta: str | None = None

    @property
    def ratio(self) -> float:
        return len(self.frame) / self.original_length if self.original_length else 1.0


@dataclass
class Encoder:
    """HDE with the fields of ``CompressionConfig`` (``novacron.config``); see the module docstring."""

    algorithm: str = "zstd"
    level: int = 3
    enable_delta: bool = True
    enable_ml_model: bool = False
    cost_model: CostModel | None = None
    _selector: RuleSelector | LearnedSelector | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, config, cost_model: CostModel | None = None) -> Encoder:
        """From a ``CompressionConfig`` (or anything with its four fields)."""
        return cls(config.algorithm, config.level, config.enable_delta, config.enable_ml_model, cost_model)

    @property
    def selector(self) -> RuleSelector | LearnedSelector:
        """The rule-based selector, or the learned one with ``enable_ml_model`` (loaded on first use)."""
        if self._selector is None:
            self._selector = make_selector(self.enable_ml_model, self.cost_model)
        return self._selector

    def choose(self, data: bytes | memoryview, link_bps: float) -> Choice:
        return self.selector.choose(data, link_bps)

    def encode(
        self,
        data: bytes | memoryview,
        *,
        link_bps: float | None = None,
        base: bytes | memoryview | None = None,
    ) -> Encoded:
        """Encode ``data``; pass ``link_bps`` (bits/s) for adaptive selection, ``base`` for a delta."""
        choice = self.choose(data, link_bps) if link_bps is not None else None
        codec, level = (choice.codec, choice.level) if choice else (self.algorithm, self.level)
        if base is not None and self.enable_delta:
            method = "xbzrle" if len(base) == len(data) else "rsync"
            return Encoded(encode_delta(base, data, method, codec, level), len(data), choice, method)
        return Encoded(encode(data, codec, level), len(data), choice)

    @staticmethod
    def decode(
        frame: bytes | memoryview, base: bytes | memoryview | None = None, *, max_size: int = DEFAULT_MAX_SIZE
    ) -> bytes:
        """Decode any HDE frame (see :func:`.frame.decode`)."""
        return decode(frame, base, max_size=max_size)
