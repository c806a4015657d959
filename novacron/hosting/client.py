"""A client of the VM hosts of a cluster (``novacron vm``, a controller, a notebook).

Each request goes to one host and is re-sent every ``retry`` seconds until that host answers or
``timeout`` passes (hosts answer repeats with the same reply, so a request takes effect once).
A host that does not answer in time raises :class:`HostUnreachable`: the request may still have
taken effect there; a migration whose switch-over went unanswered raises :class:`MigrationInDoubt`
(both are :class:`OutcomeUnknown`). A refusal raises :class:`VMRequestRefused` with the host's
reason.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from novacron.runtime import FutureLike, Runtime, wait_done

from .messages import HostStatus, MigrationSummary, VMReply, VMRequest
from .placement import choose_host
from .spec import VMSpec


class OutcomeUnknown(TimeoutError):
    """What was asked may or may not have happened (yet)."""


class HostUnreachable(OutcomeUnknown):
    """A host did not answer in time (what was asked may still have happened there)."""


class MigrationInDoubt(OutcomeUnknown):
    """The migration's switch-over went unanswered: the VM is paused at its source until the
    source learns whether the destination runs it (``novacron vm list`` shows it ``in-doubt``)."""


class VMRequestRefused(RuntimeError):
    """A host answered that it will not do what was asked (the message says why)."""


class VMNotFound(LookupError):
    """No host that answered has a VM of that name."""


class VMClient:
    """Requests to the VM hosts ``hosts`` from runtime ``rt`` (one client per runtime: it takes
    the runtime's :class:`VMReply` messages)."""

    def __init__(
        self, rt: Runtime, hosts: Sequence[str], *, timeout: float = 5.0, retry: float = 0.5
    ) -> None:
        if not hosts:
            raise ValueError("a client needs at least one host")
        if not (timeout > 0 and retry > 0):
            raise ValueError(f"timeout and retry must be > 0 seconds, got {timeout} and {retry}")
        self.rt, self.hosts, self.timeout, self.retry = rt, tuple(hosts), float(timeout), float(retry)
        self.client = f"{rt.random.getrandbits(64):016x}"
        self._numbers = itertools.count(1)
        self._waiting: dict[int, FutureLike[VMReply]] = {}
        rt.on_message(VMReply, self._on_reply)

    # -- reading -------------------------------------------------------------------------------
    async def status(self, host: str) -> HostStatus:
        reply = await self._ask(host, "status")
        assert reply.status is not None
        return reply.status

    async def cluster(self) -> dict[str, HostStatus | None]:
        """Every host's status, None for a host that did not answer (all asked at once)."""
        asked = {host: self.rt.spawn(self._status_or_none(host)) for host in self.hosts}
        return {host: await task for host, task in asked.items()}

    async def _status_or_none(self, host: str) -> HostStatus | None:
        try:
            return await self.status(host)
        except HostUnreachable:
            return None

    async def locate(self, name: str) -> str:
        """The host of VM ``name``; :class:`VMNotFound` if no host that answered has it."""
        hosts = await self.cluster()
        for host, status in hosts.items():
            if status is not None and any(vm.spec.name == name for vm in status.vms):
                return host
        silent = [h for h, s in hosts.items() if s is None]
        unknown = f" ({', '.join(silent)} did not answer)" if silent else ""
        raise VMNotFound(f"no host has a VM named {name!r}{unknown}")

    # -- changing ------------------------------------------------------------------------------
    async def start(self, spec: VMSpec, host: str | None = None) -> str:
        """Start ``spec`` on ``host`` (default: placed by :func:`~.placement.choose_host`); returns
        the host. A name used anywhere in the cluster is refused (names are how VMs are found)."""
        spec.check()
        hosts = await self.cluster()
        for other, status in hosts.items():
            if status is not None and any(vm.spec.name == spec.name for vm in status.vms):
                raise VMRequestRefused(f"{other} already has a VM named {spec.name}")
        if host is None:
            host = choose_host(spec, hosts)
        elif host not in self.hosts:
            raise ValueError(f"no host {host!r} in the cluster; hosts: {', '.join(self.hosts)}")
        await self._ask(host, "start", spec=spec)
        return host

    async def stop(self, name: str) -> str:
        """Stop VM ``name`` wherever it runs; returns its host."""
        host = await self.locate(name)
        await self._ask(host, "stop", name=name)
        return host

    async def migrate(
        self, name: str, to: str | None = None, *, engine: str = "precopy", timeout: float = 600.0
    ) -> MigrationSummary:
        """Live-migrate VM ``name`` to host ``to`` (default: placed among the other hosts); waits
        up to ``timeout`` seconds for the migration to finish."""
        hosts = await self.cluster()
        source = next(
            (h for h, s in hosts.items() if s is not None and any(vm.spec.name == name for vm in s.vms)), None
        )
        if source is None:
            raise VMNotFound(f"no host has a VM named {name!r}")
        if to is None:
            spec = next(vm.spec for vm in hosts[source].vms if vm.spec.name == name)  # type: ignore[union-attr]
            to = choose_host(spec, hosts, exclude=[source])
        elif to not in self.hosts:
            raise ValueError(f"no host {to!r} in the cluster; hosts: {', '.join(self.hosts)}")
        reply = await self._ask(source, "migrate", name=name, to=to, engine=engine, timeout=timeout)
        assert reply.migration is not None
        return reply.migration

    # -- the exchange --------------------------------------------------------------------------
    async def _ask(self, host: str, op: str, *, timeout: float | None = None, **fields) -> VMReply:
        number = next(self._numbers)
        request = VMRequest(self.client, number, op, **fields)  # type: ignore[arg-type]
        waiter = self._waiting[number] = self.rt.create_future()
        limit = timeout or self.timeout
        deadline = self.rt.now() + limit
        try:
            while True:
                left = deadline - self.rt.now()
                if left <= 0:
                    raise HostUnreachable(f"{host} did not answer the {op} within {limit:g}s")
                self.rt.send(host, request)
                if await wait_done(self.rt, waiter, min(self.retry, left)):
                    break
            reply = waiter.result()
        finally:
            self._waiting.pop(number, None)
        if reply.error and reply.unknown:
            raise MigrationInDoubt(f"{host}: {reply.error}")
        if reply.error:
            raise VMRequestRefused(f"{host} refused the {op}: {reply.error}")
        return reply

    def _on_reply(self, src: str, reply: VMReply) -> None:
        waiter = self._waiting.get(reply.request)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
