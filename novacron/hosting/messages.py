"""The VM control protocol between clients (``novacron vm``, controllers) and hosts.

A client sends :class:`VMRequest` and re-sends it until the :class:`VMReply` with the same
``request`` number comes back; a host answers a repeat with the reply it gave (or will give), so a
request takes effect once however often it is sent (a migration runs once). Requests are numbered
per client, and clients tell themselves apart by a random ``client`` token.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from novacron.runtime import Message

from .spec import VMSpec

Op = Literal["status", "start", "stop", "migrate"]
#: what a VM is doing on a host: its guest being built, running, being migrated away (and still
#: running here), arriving in a migration, or paused here after a switch-over that went
#: unanswered (``in-doubt`` while the source asks, ``paused`` once it gave up: see host.py)
State = Literal["starting", "running", "migrating", "arriving", "in-doubt", "paused"]


class VMInfo(msgspec.Struct, frozen=True):
    spec: VMSpec
    state: State
    since: float  # the host's clock when the VM entered ``state``
    #: what an operator should know beyond the state (an arriving post-copy guest that already runs
    #: here while pages are still at its source, a migration's id...)
    detail: str = ""


class HostStatus(msgspec.Struct, frozen=True):
    """A host's VMs and memory: ``used_mib`` counts arriving VMs too (their memory is taken)."""

    node: str
    capacity_mib: int
    used_mib: int
    vms: list[VMInfo]

    @property
    def free_mib(self) -> int:
        return self.capacity_mib - self.used_mib


class MigrationSummary(msgspec.Struct, frozen=True):
    """What ``migrate`` reports back: the headline figures of the migration's report."""

    migration: str
    source: str
    destination: str
    engine: str
    total_time: float
    downtime: float
    bytes_sent: int
    memory_bytes: int
    rounds: int


class VMRequest(Message, tag="vm-request", omit_defaults=True):
    """``client`` tells one client from another on the same node (a command line run twice from
    one client slot numbers its requests from 1 both times)."""

    client: str
    request: int
    op: Op
    name: str = ""  # stop, migrate
    spec: VMSpec | None = None  # start
    to: str = ""  # migrate: the destination host
    engine: str = "precopy"  # migrate: precopy or postcopy


class VMReply(Message, tag="vm-reply", omit_defaults=True):
    request: int
    error: str = ""
    status: HostStatus | None = None  # every reply but a failed one: the host after the request
    migration: MigrationSummary | None = None
    #: with ``error``: not a refusal but an outcome not known yet (a migration in doubt)
    unknown: bool = False
