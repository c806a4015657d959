"""Reporting across epochs: one index space and one term space for the whole history.

Each epoch's protocol numbers from 1 again (Raft log indexes, PBFT execution
indexes, terms and views), while the checks (``novacron.sim.dst.checks``) need
"one command per index" and "one leader per term" over the whole run. So the
host reports index ``base + i`` (``base``: the global index of the switch
command that started the epoch, agreed like any command) and term
``epoch * TERM_STRIDE + t``. It also drops what the epoch reports after its
switch (frozen commands were not applied) and the host's own switch command,
which it turns into the end of the epoch instead.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api import Command, Observer
from .handover import EpochSessions
from .messages import RESERVED_CLIENT

#: terms/views of epoch e are reported as e * TERM_STRIDE + term
TERM_STRIDE = 1_000_000


class EpochObserver:
    """The observer one epoch's instance reports to (see the module docstring)."""

    def __init__(
        self,
        outer: Observer,
        *,
        epoch: int,
        base: int,
        sessions: EpochSessions,
        on_switch_applied: Callable[[int], None],
    ) -> None:
        self.outer = outer
        self.epoch = epoch
        self.base = base
        self.sessions = sessions
        self._on_switch_applied = on_switch_applied
        self._ended = False

    def applied(self, node: str, index: int, command: Command, result: bytes) -> None:
        if self._ended:
            return
        if self.sessions.frozen:
            # the first report after the freeze is the switch command itself (Raft and PBFT report
            # every command right after applying it): its index is where the next epoch starts
            self._ended = True
            self._on_switch_applied(self.base + index)
            return
        if command.client.startswith(RESERVED_CLIENT):
            return  # a switch command this epoch did not accept: a no-op
        self.outer.applied(node, self.base + index, command, result)

    def leader(self, node: str, term: int) -> None:
        if not self._ended:
            self.outer.leader(node, self.epoch * TERM_STRIDE + term)

    def restored(self, node: str, index: int) -> None:
        if not self._ended:
            self.outer.restored(node, self.base + index)

    def misbehaviour(self, node: str, culprit: str, what: str) -> None:
        self.outer.misbehaviour(node, culprit, what)
