"""AMST, adaptive multi-stream transport (DWCP v3): bulk data over many streams."""

from .amst import AMST, DEFAULT_CHUNK, AMSTReport, plan_chunks
from .scheduler import ChunkScheduler

__all__ = ["AMST", "AMSTReport", "ChunkScheduler", "DEFAULT_CHUNK", "plan_chunks"]
