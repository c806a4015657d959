"""Which host a new VM goes to: best fit on memory, the one resource hosts declare.

It is ITP's ``best_fit`` rule (:mod:`novacron.placement.heuristics`) on one dimension: the host
left with the least free memory that still holds the VM, which keeps the big holes for big VMs.
Ties go to the lower node id, so the same cluster state gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .messages import HostStatus
from .spec import VMSpec


class NoHostFits(ValueError):
    """No host that answered has room for the VM (the message lists what each has free)."""


def choose_host(spec: VMSpec, hosts: Mapping[str, HostStatus | None], *, exclude: Iterable[str] = ()) -> str:
    """The host for ``spec`` among ``hosts`` (None: a host that did not answer) but ``exclude``."""
    excluded = set(exclude)
    fitting = [
        (status.free_mib - spec.memory_mib, node)
        for node, status in hosts.items()
        if status is not None and node not in excluded and status.free_mib >= spec.memory_mib
    ]
    if fitting:
        return min(fitting)[1]
    seen = ", ".join(
        f"{node} did not answer"
        if status is None
        else f"{node} {status.free_mib}/{status.capacity_mib} MiB free"
        for node, status in sorted(hosts.items())
        if node not in excluded
    )
    raise NoHostFits(f"no host has {spec.memory_mib} MiB free for {spec.name}: {seen or 'no hosts'}")
