"""A client of ASS replicas on other nodes (a command line, a controller that holds no replica).

It asks one replica, and another if that one does not answer in ``timeout``: any replica serves
any key. Reads and writes are the replica's (:class:`~.service.StateSync`): a write returns once
it is durable at that replica. A write retried at another replica after a timeout may apply twice,
as two siblings of the same value, as in any store that accepts writes everywhere; a later write
that read both replaces both.
"""

from __future__ import annotations

from collections.abc import Sequence

from novacron.runtime import FutureLike, Runtime

from .keys import check_key
from .service import StateReply, StateRequest
from .versions import VersionSet, VersionVector


class NoReplicaAnswered(TimeoutError):
    """No replica answered in time (a write may still have applied at one of them)."""


class StateClient:
    """Requests to ``replicas`` (in order, the next one after a timeout) from runtime ``rt`` (one
    client per runtime: it takes the runtime's replies)."""

    def __init__(self, rt: Runtime, replicas: Sequence[str], *, timeout: float = 2.0) -> None:
        if not replicas:
            raise ValueError("a client needs at least one replica")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.rt, self.replicas, self.timeout = rt, tuple(replicas), float(timeout)
        self._next = 0
        self._waiting: dict[int, FutureLike[StateReply]] = {}
        rt.on_message(StateReply, self._on_reply)

    async def get(self, key: str) -> VersionSet:
        return await self._ask("get", key)

    async def put(
        self, key: str, value: bytes, context: VersionVector | None = None, *, replace_current: bool = False
    ) -> VersionSet:
        """Write ``value`` replacing what ``context`` read, or (``replace_current``) whatever the
        replica holds when the write arrives."""
        return await self._ask("put", key, bytes(value), context, replace_current)

    async def delete(
        self, key: str, context: VersionVector | None = None, *, replace_current: bool = False
    ) -> VersionSet:
        return await self._ask("delete", key, None, context, replace_current)

    async def _ask(self, op, key, value=None, context=None, replace_current=False) -> VersionSet:
        check_key(key)  # here, not at the replica: a malformed request would not even decode there
        for replica in self.replicas:
            self._next += 1
            request = self._next
            waiter = self._waiting[request] = self.rt.create_future()
            timer = self.rt.call_later(self.timeout, _expire, waiter)
            self.rt.send(replica, StateRequest(request, op, key, value, context, replace_current))
            try:
                reply = await waiter
            finally:
                timer.cancel()
                self._waiting.pop(request, None)
            if reply is None:
                continue
            if reply.error:
                raise ValueError(f"{replica} refused the {op}: {reply.error}")
            return reply.state if reply.state is not None else VersionSet()
        raise NoReplicaAnswered(f"no replica of {', '.join(self.replicas)} answered the {op} of {key!r}")

    def _on_reply(self, src: str, msg: StateReply) -> None:
        waiter = self._waiting.get(msg.request)
        if waiter is not None and not waiter.done():
            waiter.set_result(msg)


def _expire(waiter: FutureLike[StateReply | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
