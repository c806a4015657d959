"""The state machine side of a switch: intercept the switch command and freeze.

Raft and PBFT both apply committed commands to a :class:`Sessions`; the
adaptive host gives each epoch's instance an :class:`EpochSessions`, which
recognises the switch command when it is applied. Because the protocol
applies the same commands in the same order on every replica, every replica
meets the switch at the same position, and the snapshot taken there (state
and client table) is the same everywhere: that is the hand-over.

After the switch the sessions are *frozen*: commands the old epoch ordered
behind the switch change nothing (and the host drops their replies), so they
are neither applied now nor counted as applied; their clients retry with the
same sequence number in the new epoch, whose Sessions (carried over)
deduplicate anything that was applied before the switch.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api import Command, StateMachine
from ..sessions import Sessions
from .messages import RESERVED_CLIENT, SwitchProtocol, decode_switch

#: the result of a command applied to frozen sessions (never sent: the host drops those replies)
FROZEN = b"\x00frozen"


class EpochSessions(Sessions):
    """:class:`Sessions` for one epoch: applies commands until the epoch's switch command.

    ``accept(switch)`` decides (deterministically, the same on every replica) whether a
    switch command is valid for this epoch; ``on_switch(switch, snapshot)`` is then called
    once, synchronously, with the snapshot taken at exactly that point.
    """

    def __init__(
        self,
        inner: StateMachine,
        *,
        epoch: int,
        accept: Callable[[SwitchProtocol], bool],
        on_switch: Callable[[SwitchProtocol, bytes], None],
        max_sessions: int = 10_000,
    ) -> None:
        super().__init__(inner, max_sessions=max_sessions)
        self.epoch = epoch
        self._accept = accept
        self._on_switch = on_switch
        self.switch: SwitchProtocol | None = None  #: the switch this epoch ended with

    @property
    def frozen(self) -> bool:
        return self.switch is not None

    def apply(self, command: Command) -> bytes:
        if self.switch is not None:
            return FROZEN
        if command.client.startswith(RESERVED_CLIENT):
            # never reaches the user's state machine nor the client table: both are handed
            # over exactly as they were just before the switch
            switch = decode_switch(command.op)
            if switch is not None and switch.epoch == self.epoch + 1 and self._accept(switch):
                self.switch = switch
                self._on_switch(switch, self.snapshot())
            return b""
        return super().apply(command)

    def duplicate(self, command: Command) -> bytes | None:
        if command.client.startswith(RESERVED_CLIENT):
            return None  # a switch command is never answered from the table: it must be ordered
        return super().duplicate(command)
