"""Clients of a replicated service: find the leader, retry, and gather enough replies.

One client serves both protocols; what differs is how many matching replies
make an answer trustworthy (``quorum``): Raft's leader is trusted, so one
reply suffices; under PBFT up to ``f`` replicas may lie, so the client waits
for ``f + 1`` replicas that agree on the result (one of them is correct).

A client runs one operation at a time, as Jepsen's processes do: that is
what makes its history checkable. An operation that gets no answer before
its ``timeout`` raises :class:`OutcomeUnknown`: it may still take effect
later, and the history must say so (``info``), never ``fail``.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Sequence

from novacron.runtime import Runtime, node_scoped_id

from .api import ClientReply, ClientRequest, client_node
from .history import History
from .kv import CompareAndSet, Delete, Get, Put, Result, decode_result, encode_op
from .sessions import STALE

log = logging.getLogger(__name__)

#: Per node incarnation, the number of the next client it names: counted per runtime (not per
#: process, or a simulation's ids, and so its message sizes and timings, would depend on what ran
#: before it in the same process).
_client_numbers: weakref.WeakKeyDictionary[Runtime, itertools.count] = weakref.WeakKeyDictionary()


class OutcomeUnknown(TimeoutError):
    """No (sufficient) answer in time: the operation may or may not have taken effect."""


class Rejected(RuntimeError):
    """The service answered that it will not execute the operation (a definite failure)."""


class ConsensusClient:
    """Sends operations to ``members`` and returns the agreed result.

    ``quorum`` matching replies from distinct replicas are needed (1 for
    Raft, f + 1 for PBFT). ``retry_interval`` is how long to wait for an
    answer before re-sending (to the next replica for Raft, to every
    replica for PBFT, as the PBFT paper's clients do).
    """

    def __init__(
        self,
        rt: Runtime,
        members: Sequence[str],
        *,
        quorum: int = 1,
        client_id: str | None = None,
        timeout: float = 5.0,
        retry_interval: float = 0.5,
        broadcast_retries: bool | None = None,
    ) -> None:
        if not members:
            raise ValueError("a client needs at least one member to talk to")
        if not 1 <= quorum <= len(members):
            raise ValueError(f"quorum must be within 1..{len(members)}, got {quorum}")
        self.rt = rt
        self.members = list(members)
        self.quorum = quorum
        if client_id is None:
            numbers = _client_numbers.setdefault(rt, itertools.count(1))
            client_id = node_scoped_id(rt, f"c{next(numbers)}")
        self.client_id = client_id
        if client_node(self.client_id) != rt.node_id:
            raise ValueError(
                f"client id {self.client_id!r} must be {rt.node_id!r} or start with {rt.node_id + '/'!r}: "
                "replicas send replies to (and PBFT vouches for requests by) the node it names"
            )
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.broadcast_retries = quorum > 1 if broadcast_retries is None else broadcast_retries
        self.leader: str = self.members[rt.random.randrange(len(self.members))]
        self._seq = 0
        self._waiting: _Call | None = None
        _ReplyRouter.of(rt).add(self)

    async def call(self, op: bytes, *, read: bool = False, timeout: float | None = None) -> bytes:
        """Execute ``op``; raises :class:`OutcomeUnknown` after ``timeout`` without an answer."""
        if self._waiting is not None:
            raise RuntimeError("one operation at a time per client: await the previous call first")
        rt = self.rt
        self._seq += 1
        request = ClientRequest(self.client_id, self._seq, op, read=read)
        call = self._waiting = _Call(request, rt.create_future())
        deadline = rt.now() + (self.timeout if timeout is None else timeout)
        try:
            targets = [self.leader]
            while True:
                for dst in targets:
                    rt.send(dst, request)
                wait = min(self.retry_interval, deadline - rt.now())
                if wait <= 0:
                    raise OutcomeUnknown(
                        f"{self.client_id} seq {request.seq}: no answer from {self.members} in time"
                    )
                call.wake = rt.create_future()
                handle = rt.call_later(wait, _resolve, call.wake)
                await call.wake
                handle.cancel()
                if call.done.done():
                    return call.done.result()
                targets = self._next_targets(call)
        finally:
            self._waiting = None

    def _next_targets(self, call: _Call) -> list[str]:
        if call.redirect:  # a replica named the leader: go there at once
            call.redirect = False
            return [self.leader]
        if self.broadcast_retries:
            return list(self.members)
        self.leader = self.members[(self.members.index(self.leader) + 1) % len(self.members)]
        return [self.leader]

    def _on_reply(self, src: str, reply: ClientReply) -> None:
        call = self._waiting
        if call is None or reply.client != self.client_id or reply.seq != call.request.seq:
            return  # a late reply to an earlier operation, or not ours
        if src not in self.members or reply.replica != src:
            return  # replies count only from members, speaking for themselves
        if not reply.ok:
            if reply.leader and reply.leader in self.members and reply.leader != self.leader:
                self.leader, call.redirect = reply.leader, True
                _resolve(call.wake)
            return
        if reply.leader in self.members:
            self.leader = reply.leader
        voters = call.votes.setdefault(reply.result, set())
        voters.add(src)
        if len(voters) >= self.quorum and not call.done.done():
            call.done.set_result(reply.result)
            _resolve(call.wake)


class _ReplyRouter:
    """Routes replies to the right client, so that one runtime (one process, one
    port) can host many concurrent clients: a load generator, a web service."""

    _routers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, rt: Runtime) -> None:
        self.clients: weakref.WeakValueDictionary[str, ConsensusClient] = weakref.WeakValueDictionary()
        rt.on_message(ClientReply, self._on_reply)

    @classmethod
    def of(cls, rt: Runtime) -> _ReplyRouter:
        router = cls._routers.get(rt)
        if router is None:
            router = cls._routers[rt] = cls(rt)
        return router

    def add(self, client: ConsensusClient) -> None:
        if client.client_id in self.clients:
            raise ValueError(f"client id {client.client_id!r} is already in use on this node")
        self.clients[client.client_id] = client

    def _on_reply(self, src: str, reply: ClientReply) -> None:
        client = self.clients.get(reply.client)
        if client is not None:
            client._on_reply(src, reply)


class _Call:
    def __init__(self, request: ClientRequest, done) -> None:
        self.request = request
        self.done = done
        self.wake = done
        self.votes: dict[bytes, set[str]] = {}
        self.redirect = False


def _resolve(future) -> None:
    if not future.done():
        future.set_result(None)


class KVClient:
    """get / put / delete / compare-and-set on the replicated :class:`~.kv.KVStore`,
    each recorded in ``history`` (invoke, then ok / fail / info) for checking."""

    def __init__(self, rt: Runtime, members: Sequence[str], *, history: History | None = None, **options):
        self.rt = rt
        self.client = ConsensusClient(rt, members, **options)
        self.history = history if history is not None else History()

    @property
    def client_id(self) -> str:
        return self.client.client_id

    async def get(self, key: str) -> bytes | None:
        op_id = self.history.invoke(self.client_id, "get", key, self.rt.now())
        result = await self._run(op_id, encode_op(Get(key)), read=True)
        self.history.ok(op_id, self.rt.now(), read=result.value)
        return result.value

    async def put(self, key: str, value: bytes) -> None:
        op_id = self.history.invoke(self.client_id, "put", key, self.rt.now(), value=value)
        await self._run(op_id, encode_op(Put(key, value)))
        self.history.ok(op_id, self.rt.now())

    async def delete(self, key: str) -> None:
        op_id = self.history.invoke(self.client_id, "delete", key, self.rt.now())
        await self._run(op_id, encode_op(Delete(key)))
        self.history.ok(op_id, self.rt.now())

    async def cas(self, key: str, expected: bytes | None, new: bytes) -> bool:
        """Set ``key`` to ``new`` if it holds ``expected`` (None: absent); True if it did."""
        op_id = self.history.invoke(self.client_id, "cas", key, self.rt.now(), value=new, expected=expected)
        result = await self._run(op_id, encode_op(CompareAndSet(key, expected, new)))
        self.history.ok(op_id, self.rt.now(), swapped=result.swapped)
        return result.swapped

    async def _run(self, op_id: int, op: bytes, *, read: bool = False) -> Result:
        try:
            raw = await self.client.call(op, read=read)
        except OutcomeUnknown:
            self.history.info(op_id)
            raise
        except BaseException:
            self.history.info(op_id)  # cancelled mid-flight: it may still take effect
            raise
        if raw == STALE:  # cannot happen for the client's current seq; be explicit anyway
            self.history.info(op_id)
            raise OutcomeUnknown(f"{self.client_id}: the service answered an older request")
        try:
            result = decode_result(raw)
        except ValueError:
            self.history.info(op_id)
            raise
        if result.error:
            self.history.fail(op_id, self.rt.now())  # the store refused it: it changed nothing
            raise Rejected(result.error)
        return result
