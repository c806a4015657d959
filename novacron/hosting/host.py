"""The VMs of one node: started, stopped and migrated on request, received from other hosts.

A :class:`VMHost` owns its node's :class:`~novacron.migration.Migrator` and a hypervisor (the
runtime's: abstract guests in the simulator, real memory on the real backend). It keeps a memory
budget: a VM starts, or arrives, only if its memory fits in what the host's running, migrating
and arriving VMs leave free, so a host is never promised more than it has.

A VM is in one state at a time: ``starting`` (its guest being built), ``running``, ``migrating``
(still here, and running, until the destination took over) or ``arriving`` (the destination's
side of a migration: its memory and name are taken from the begin message on, so two migrations
cannot both bring a VM into the last free gigabyte, or two VMs of one name onto one host). A
migration whose switch-over went unanswered leaves the source's copy ``in-doubt`` (paused: the
destination may run it; see :class:`~novacron.migration.MigrationInDoubt`) until the source
learns who runs it, or ``paused`` if it never does.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from novacron.migration import MigrationError, MigrationInDoubt, MigrationSettings, Migrator
from novacron.migration.messages import MigrationBegin
from novacron.migration.service import Incoming
from novacron.monitoring.counters import counter_by
from novacron.runtime import Runtime
from novacron.sync import StateSync

from .inventory import Inventory
from .messages import HostStatus, MigrationSummary, VMInfo, VMReply, VMRequest
from .spec import VMSpec

log = logging.getLogger(__name__)

#: answered requests remembered per host, to answer repeats (a client re-sends until answered)
ANSWERED_MEMORY = 1024


class RequestError(ValueError):
    """A request this host will not carry out; the message says why (it goes back to the client)."""


class InDoubt(RequestError):
    """A migration whose outcome is not known yet (see :class:`~novacron.migration.MigrationInDoubt`)."""


class Hypervisor(Protocol):
    """How a host makes and removes guests (the runtime's: see ``ModelHypervisor`` and
    ``novacron.backends.vm.BufferHypervisor``)."""

    async def create(self, spec: VMSpec) -> Any:
        """A running guest for ``spec`` (a :class:`~novacron.migration.SourceVM`)."""

    def receive(self, spec: VMSpec, begin: MigrationBegin) -> Any:
        """An empty guest for an incoming migration (a :class:`~novacron.migration.DestinationVM`)."""

    def destroy(self, vm: Any) -> None:
        """Stop the guest and free its memory."""


def default_settings(engine: str) -> MigrationSettings:
    """DWCP v3 migration settings with the asked engine (``precopy`` or ``postcopy``)."""
    return MigrationSettings.dwcp(engine=engine)


@dataclass
class HostingStats:
    """What a host did, for operators (``/metrics``) and tests."""

    migrations_out: Counter[str] = counter_by(
        "outcome", "migrations of VMs away from this host, by outcome (completed, failed, in_doubt)"
    )
    migrations_in: Counter[str] = counter_by(
        "outcome", "migrations of VMs to this host, by outcome (finished, aborted, failed)"
    )
    requests: Counter[str] = counter_by("op", "client requests carried out or refused, by operation")
    refused: Counter[str] = counter_by(
        "op", "client requests refused (the client was told why), by operation"
    )
    in_doubt: Counter[str] = counter_by(
        "resolution",
        "migrations whose switch-over went unanswered, by how they resolved "
        "(destination, source, unresolved)",
    )


@dataclass
class Hosted:
    spec: VMSpec
    vm: Any  # the hypervisor's guest; None while starting
    state: str
    since: float
    migration: str = ""  # arriving: the incoming migration's id


class VMHost:
    """The VM host of node ``rt`` (module docstring); serves :class:`VMRequest` from clients."""

    def __init__(
        self,
        rt: Runtime,
        hypervisor: Hypervisor,
        *,
        capacity_mib: int,
        migrator: Migrator | None = None,
        settings: Callable[[str], MigrationSettings] = default_settings,
        inventory: StateSync | None = None,
    ) -> None:
        """``inventory``: the node's ASS replica, to record there where this host's VMs run
        (:mod:`.inventory`)."""
        if capacity_mib < 1:
            raise ValueError(f"a host needs capacity_mib >= 1, got {capacity_mib}")
        self.rt, self.hypervisor, self.capacity_mib, self.settings = rt, hypervisor, capacity_mib, settings
        self.inventory = Inventory(rt, inventory) if inventory is not None else None
        if self.inventory is not None:
            self.inventory.forget_all_but(set())  # a host starts with no guests
        self.vms: dict[str, Hosted] = {}
        self.stats = HostingStats()
        self.migrator = migrator or Migrator(rt)
        self.migrator.vm_factory = self._arriving
        self.migrator.on_settled = self._settled
        self._answered: OrderedDict[tuple[str, str, int], VMReply] = OrderedDict()
        self._working: set[tuple[str, str, int]] = set()
        rt.on_message(VMRequest, self._on_request)

    # -- what clients see --------------------------------------------------------------------
    def status(self) -> HostStatus:
        return HostStatus(
            self.rt.node_id,
            self.capacity_mib,
            self.used_mib,
            [self._info(self.vms[name]) for name in sorted(self.vms)],
        )

    def _info(self, hosted: Hosted) -> VMInfo:
        detail = ""
        incoming = self.migrator.incoming.get(hosted.migration) if hosted.migration else None
        if incoming is not None and incoming.state == "running" and incoming.vm is not None:
            detail = f"post-copy: runs here, {incoming.vm.missing_count()} pages still at {incoming.src}"
        elif incoming is not None:
            detail = f"migration {incoming.id} from {incoming.src}"
        elif hosted.state in ("in-doubt", "paused"):
            detail = "paused here: the destination may run it (its switch-over went unanswered)"
        return VMInfo(hosted.spec, hosted.state, hosted.since, detail)  # type: ignore[arg-type]

    @property
    def used_mib(self) -> int:
        return sum(h.spec.memory_mib for h in self.vms.values())

    def close(self) -> None:
        """Destroy every guest (the node is stopping)."""
        for hosted in self.vms.values():
            if hosted.vm is not None:
                self.hypervisor.destroy(hosted.vm)
        self.vms.clear()

    # -- requests ------------------------------------------------------------------------------
    def _on_request(self, src: str, request: VMRequest) -> None:
        key = (src, request.client, request.request)
        if key in self._answered:
            self.rt.send(src, self._answered[key])
        elif key not in self._working:  # a repeat of one in progress is answered when it is done
            self._working.add(key)
            self.rt.spawn(self._serve(src, request, key))

    async def _serve(self, src: str, request: VMRequest, key: tuple[str, str, int]) -> None:
        self.stats.requests[request.op] += 1
        try:
            migration = await self._carry_out(request)
            reply = VMReply(request.request, status=self.status(), migration=migration)
        except (RequestError, ValueError) as exc:  # ValueError: VMSpecError, SettingsError
            reply = VMReply(request.request, error=str(exc), unknown=isinstance(exc, InDoubt))
        except Exception as exc:  # a bug here must not leave the client waiting for ever
            log.exception("%s: the %s request from %s failed", self.rt.node_id, request.op, src)
            reply = VMReply(request.request, error=f"internal error: {type(exc).__name__}: {exc}")
        if reply.error:
            self.stats.refused[request.op] += 1
        self._working.discard(key)
        self._answered[key] = reply
        while len(self._answered) > ANSWERED_MEMORY:
            self._answered.popitem(last=False)
        self.rt.send(src, reply)

    async def _carry_out(self, request: VMRequest) -> MigrationSummary | None:
        if request.op == "start":
            if request.spec is None:
                raise RequestError("start needs a VM description (spec)")
            await self.start(request.spec)
        elif request.op == "stop":
            self.stop(request.name)
        elif request.op == "migrate":
            return await self.migrate(request.name, request.to, request.engine)
        return None  # status: the reply carries it

    # -- the operations (also callable in-process) ---------------------------------------------
    async def start(self, spec: VMSpec) -> None:
        spec.check()
        self._admit(spec)
        hosted = self.vms[spec.name] = Hosted(spec, None, "starting", self.rt.now())
        try:
            hosted.vm = await self.hypervisor.create(spec)
        except Exception as exc:
            del self.vms[spec.name]
            raise RequestError(f"{self.rt.node_id} could not create {spec.name}: {exc}") from None
        hosted.state, hosted.since = "running", self.rt.now()
        if self.inventory is not None:
            self.inventory.started(spec.name)
        log.info("%s: started %s (%d MiB)", self.rt.node_id, spec.name, spec.memory_mib)

    def stop(self, name: str) -> None:
        """Stop a running VM; or throw away the paused copy an unresolved migration left here, or
        a post-copy guest still waiting for pages (its source may be gone with them)."""
        hosted = self.vms.get(name)
        incoming = self.migrator.incoming.get(hosted.migration) if hosted and hosted.migration else None
        if hosted is not None and incoming is not None and incoming.state == "running":
            self.migrator.abandon(incoming.id)  # on_settled drops it (as a migration that failed)
            log.info("%s: stopped %s, a post-copy guest still missing pages", self.rt.node_id, name)
            return
        hosted = self._running(name, "stop", also="paused")
        self._discard(hosted)
        log.info("%s: stopped %s", self.rt.node_id, name)

    async def migrate(self, name: str, to: str, engine: str = "precopy") -> MigrationSummary:
        """Move VM ``name`` to host ``to``; on failure the VM stays here, running."""
        settings = self.settings(engine)  # SettingsError (a ValueError) for an unknown engine
        hosted = self._running(name, "migrate")
        if to == self.rt.node_id:
            raise RequestError(f"{name} is already on {to}")
        if to not in self.rt.peers:
            raise RequestError(f"no host {to!r} among {self.rt.node_id}'s peers")
        hosted.state, hosted.since = "migrating", self.rt.now()
        try:
            report = await self.migrator.migrate(hosted.vm, to, settings, meta=hosted.spec.encode())
        except MigrationInDoubt as exc:
            self.stats.migrations_out["in_doubt"] += 1
            hosted.state, hosted.since = "in-doubt", self.rt.now()  # paused here, maybe running there
            self.rt.spawn(self._settle_doubt(hosted, exc.resolution))
            raise InDoubt(str(exc)) from None
        except MigrationError as exc:
            self.stats.migrations_out["failed"] += 1
            hosted.state, hosted.since = "running", self.rt.now()  # the engine resumed the guest
            raise RequestError(str(exc)) from None
        self.stats.migrations_out["completed"] += 1
        self._discard(hosted)
        log.info(
            "%s: migrated %s to %s in %.3fs (downtime %.1f ms)",
            self.rt.node_id,
            name,
            to,
            report.total_time,
            report.downtime * 1e3,
        )
        return MigrationSummary(
            report.migration,
            self.rt.node_id,
            to,
            report.engine,
            report.total_time,
            report.downtime,
            report.bytes_sent,
            report.memory_bytes,
            len(report.rounds),
        )

    async def _settle_doubt(self, hosted: Hosted, resolution: Any) -> None:
        """An in-doubt migration resolved: the destination has the VM (drop this copy), or the
        source's guest was resumed (it runs here again); unresolved, it stays paused here
        (``paused``), for an operator to stop once the destination is known to run it."""
        outcome = await resolution
        self.stats.in_doubt[outcome] += 1
        if outcome == "destination":
            self._discard(hosted)
        else:
            hosted.state = "running" if outcome == "source" else "paused"
            hosted.since = self.rt.now()
            if self.inventory is not None:  # the copy is here (the destination's record may have
                self.inventory.started(hosted.spec.name)  # replaced this host's meanwhile)
        log.warning(
            "%s: the in-doubt migration of %s resolved: %s", self.rt.node_id, hosted.spec.name, outcome
        )

    def _discard(self, hosted: Hosted) -> None:
        if self.vms.get(hosted.spec.name) is hosted:
            del self.vms[hosted.spec.name]
            if self.inventory is not None:
                self.inventory.gone(hosted.spec.name)
        self.hypervisor.destroy(hosted.vm)

    def _admit(self, spec: VMSpec) -> None:
        """Raise unless ``spec`` can come here: its name unused, its memory free."""
        if spec.name in self.vms:
            state = self.vms[spec.name].state
            raise RequestError(f"{self.rt.node_id} already has a VM named {spec.name} ({state})")
        free = self.capacity_mib - self.used_mib
        if spec.memory_mib > free:
            raise RequestError(
                f"{self.rt.node_id} has {free} MiB free of {self.capacity_mib}: "
                f"not enough for {spec.name} ({spec.memory_mib} MiB)"
            )

    def _running(self, name: str, op: str, also: str = "") -> Hosted:
        hosted = self.vms.get(name)
        if hosted is None:
            raise RequestError(f"{self.rt.node_id} has no VM named {name!r}")
        if hosted.state not in ("running", also):
            raise RequestError(f"cannot {op} {name}: it is {hosted.state}")
        return hosted

    # -- the destination's side of a migration ---------------------------------------------------
    def _arriving(self, begin: MigrationBegin) -> Any:
        """The Migrator's ``vm_factory``: what it raises refuses the migration, with the reason."""
        spec = VMSpec.decode(begin.meta)
        if spec.pages != begin.pages:
            raise RequestError(
                f"{spec.name} has {spec.pages} pages by its description, {begin.pages} by the begin"
            )
        self._admit(spec)
        vm = self.hypervisor.receive(spec, begin)
        self.vms[spec.name] = Hosted(spec, vm, "arriving", self.rt.now(), begin.migration)
        return vm

    def _settled(self, incoming: Incoming, vm: Any) -> None:
        """The Migrator's ``on_settled``: a VM that arrived runs here; one that did not is dropped."""
        self.stats.migrations_in[incoming.state] += 1
        name = next((n for n, h in self.vms.items() if h.migration == incoming.id), None)
        if name is None:
            self.hypervisor.destroy(vm)
            return
        hosted = self.vms[name]
        if incoming.state == "finished":
            hosted.state, hosted.since, hosted.migration = "running", self.rt.now(), ""
            if self.inventory is not None:
                self.inventory.arrived(name, incoming.src)
            log.info("%s: %s arrived from %s", self.rt.node_id, name, incoming.src)
        else:
            del self.vms[name]
            self.hypervisor.destroy(vm)
            log.info(
                "%s: %s did not arrive from %s (%s)", self.rt.node_id, name, incoming.src, incoming.state
            )
