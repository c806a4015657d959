"""What encoding costs on this machine: throughput and ratio per codec, level and content class.

The simulator charges ``size / throughput`` seconds of CPU time for each encode and decode, and the
adaptive selector predicts transfer times from the same numbers, so both rest on measurements
rather than guesses. The numbers live in ``calibration.json`` next to this module and were measured
with HDE itself (framing and checksums included) on VM-memory-like buffers from
:mod:`novacron.encoding.testdata`, one per content class: ``zero``, ``text``, ``random`` and
``mixed`` (the default page mix). Levels between calibrated ones use the nearest calibrated level.

To re-measure on another machine (under a minute; run it on an idle machine, the figures are
best-of-N wall-clock rates)::

    .venv/bin/python benchmarks/calibrate_encoding.py            # rewrites calibration.json
    .venv/bin/python benchmarks/calibrate_encoding.py --help     # sizes, levels, output path

The script also retrains the learned selector (``selector_model.json``) against the new costs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

ContentClass = Literal["zero", "text", "random", "mixed"]
CONTENT_CLASSES: tuple[ContentClass, ...] = ("zero", "text", "random", "mixed")
CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class CodecCost:
    """Measured HDE figures for one codec, level and content class."""

    compress_bytes_per_s: float  # original bytes encoded per second
    decompress_bytes_per_s: float  # original bytes decoded per second
    ratio: float  # frame bytes / original bytes


@dataclass(frozen=True)
class DeltaCost:
    """Measured figures for a delta method on re-sent pages with ``changed`` of their bytes rewritten."""

    method: str
    changed: float
    encode_bytes_per_s: float
    decode_bytes_per_s: float
    ratio: float  # delta frame bytes / page bytes


@dataclass(frozen=True)
class CostModel:
    """Calibrated costs; see the module docstring for where they come from and how to redo them."""

    codecs: dict[tuple[str, int, str], CodecCost]
    deltas: tuple[DeltaCost, ...] = ()
    zero_scan_bytes_per_s: float = 1e10  # is_zero() on an all-zero buffer (a ZERO frame)
    machine: str = ""
    meta: dict[str, object] = field(default_factory=dict)

    # -- persistence --------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> CostModel:
        """The model in ``path``, or the one shipped in the package."""
        if path is None:
            text = resources.files(__package__).joinpath(CALIBRATION_FILE).read_text()
        else:
            text = Path(path).read_text()
        raw = json.loads(text)
        codecs = {
            (e["codec"], int(e["level"]), e["content"]): CodecCost(
                e["compress_bytes_per_s"], e["decompress_bytes_per_s"], e["ratio"]
            )
            for e in raw["codecs"]
        }
        deltas = tuple(DeltaCost(**d) for d in raw.get("deltas", []))
        return cls(
            codecs,
            deltas,
            raw.get("zero_scan_bytes_per_s", 1e10),
            raw.get("machine", ""),
            raw.get("meta", {}),
        )

    def to_json(self) -> str:
        codecs = [
            {"codec": codec, "level": level, "content": content, **asdict(cost)}
            for (codec, level, content), cost in sorted(self.codecs.items())
        ]
        body = {
            "machine": self.machine,
            "meta": self.meta,
            "zero_scan_bytes_per_s": self.zero_scan_bytes_per_s,
            "codecs": codecs,
            "deltas": [asdict(d) for d in self.deltas],
        }
        return json.dumps(body, indent=1) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    # -- queries ------------------------------------------------------------------------------
    @functools.cached_property
    def _levels(self) -> dict[str, list[int]]:
        """Calibrated levels per codec, ascending (the selector asks for costs on every batch)."""
        levels: dict[str, set[int]] = {}
        for codec, level, _ in self.codecs:
            levels.setdefault(codec, set()).add(level)
        return {codec: sorted(found) for codec, found in levels.items()}

    @functools.cached_property
    def _nearest(self) -> dict[tuple[str, int, str], CodecCost]:
        """Answers of :meth:`cost` already given (the codecs dict never changes)."""
        return {}

    def levels(self, codec: str) -> list[int]:
        """The calibrated levels of ``codec``, ascending."""
        return list(self._levels.get(codec, ()))

    def cost(self, codec: str, level: int, content: ContentClass = "mixed") -> CodecCost:
        """Figures for ``codec`` at ``level`` on ``content``; the nearest calibrated level stands in."""
        key = (codec, level, content)
        found = self._nearest.get(key)
        if found is not None:
            return found
        levels = self._levels.get(codec)
        if not levels:
            raise KeyError(
                f"codec {codec!r} is not calibrated (calibrated: {sorted({c for c, _, _ in self.codecs})})"
            )
        if content not in CONTENT_CLASSES:
            raise KeyError(f"unknown content class {content!r}; use one of {CONTENT_CLASSES}")
        nearest = min(levels, key=lambda lv: (abs(lv - level), -lv))
        found = self._nearest[key] = self.codecs[(codec, nearest, content)]
        return found

    def compress_seconds(self, codec: str, level: int, nbytes: int, content: ContentClass = "mixed") -> float:
        """CPU seconds to encode ``nbytes`` of ``content`` (what the simulator charges)."""
        return nbytes / self.cost(codec, level, content).compress_bytes_per_s

    def decompress_seconds(
        self, codec: str, level: int, nbytes: int, content: ContentClass = "mixed"
    ) -> float:
        """CPU seconds to decode a frame of ``nbytes`` original bytes."""
        return nbytes / self.cost(codec, level, content).decompress_bytes_per_s

    def encoded_bytes(self, codec: str, level: int, nbytes: int, content: ContentClass = "mixed") -> int:
        """Expected frame size for ``nbytes`` of ``content``."""
        return round(nbytes * self.cost(codec, level, content).ratio)

    def delta(self, method: str, changed: float = 0.05) -> DeltaCost:
        """Figures for delta ``method`` at the calibrated changed share nearest ``changed``."""
        rows = [d for d in self.deltas if d.method == method]
        if not rows:
            raise KeyError(f"delta method {method!r} is not calibrated")
        return min(rows, key=lambda d: abs(d.changed - changed))
