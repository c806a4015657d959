"""What a VM is to its host: a name, a memory size and the guest's write load.

A :class:`VMSpec` travels in requests from clients and, inside a migration's begin message, to the
destination host, which rebuilds the same guest from it; so it is a msgspec Struct, checked where
it enters (:meth:`VMSpec.check`) with an error that names the field.
"""

from __future__ import annotations

import math
import re

import msgspec

from novacron.migration import PAGE_SIZE, UniformWorkload, idle
from novacron.migration.workload import Workload

#: names are what operators type: letters, digits, dot, dash and underscore, 1-63 characters
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
MAX_MEMORY_MIB = 1 << 20  # 1 TiB: a bound that catches a unit slip (bytes given as MiB)
PAGES_PER_MIB = (1 << 20) // PAGE_SIZE


class VMSpecError(ValueError):
    """A VM description that cannot be hosted as given (the message names the field)."""


class VMSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A VM: ``memory_mib`` of guest memory, of which the guest writes ``dirty_rate`` pages per
    second spread over its first ``working_set_mib`` (0: the whole memory)."""

    name: str
    memory_mib: int
    dirty_rate: float = 0.0
    working_set_mib: int = 0

    def check(self) -> VMSpec:
        """Self, or :class:`VMSpecError` naming what is wrong."""
        if not NAME.fullmatch(self.name):
            raise VMSpecError(
                f"name must be 1-63 letters, digits, '.', '-' or '_' (not first), got {self.name!r}"
            )
        if not 1 <= self.memory_mib <= MAX_MEMORY_MIB:
            raise VMSpecError(f"memory_mib must be in [1, {MAX_MEMORY_MIB}], got {self.memory_mib}")
        if not (math.isfinite(self.dirty_rate) and self.dirty_rate >= 0):
            raise VMSpecError(f"dirty_rate must be a finite number of pages/s >= 0, got {self.dirty_rate}")
        if not 0 <= self.working_set_mib <= self.memory_mib:
            raise VMSpecError(
                f"working_set_mib must be in [0, memory_mib={self.memory_mib}], got {self.working_set_mib}"
            )
        return self

    @property
    def pages(self) -> int:
        return self.memory_mib * PAGES_PER_MIB

    def workload(self) -> Workload:
        """The guest's writes: uniform over the working set (idle when ``dirty_rate`` is 0)."""
        if self.dirty_rate == 0:
            return idle()
        working_set = (self.working_set_mib or self.memory_mib) * PAGES_PER_MIB
        return UniformWorkload(rate=self.dirty_rate, working_set=working_set)

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> VMSpec:
        """The spec in ``data`` (a migration's begin), checked; :class:`VMSpecError` otherwise."""
        try:
            spec = msgspec.msgpack.decode(data, type=cls)
        except msgspec.DecodeError as exc:
            raise VMSpecError(f"malformed VM description: {exc}") from None
        return spec.check()
