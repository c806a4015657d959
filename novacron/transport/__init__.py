"""AMST, adaptive multi-stream transport (DWCP v3): bulk data over many streams."""

from .amst import AMST, DEFAULT_CHUNK, AMSTReport, TransferRefused, plan_chunks
from .dataplane import ContentMix, DataPlane, TransferResult
from .policy import StreamController, choose_congestion
from .scheduler import ChunkScheduler

__all__ = [
    "AMST",
    "AMSTReport",
    "ChunkScheduler",
    "ContentMix",
    "DEFAULT_CHUNK",
    "DataPlane",
    "StreamController",
    "TransferRefused",
    "TransferResult",
    "choose_congestion",
    "plan_chunks",
]
