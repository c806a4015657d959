"""Where each VM runs, in the map every node replicates: ``vm/<name>`` holds its host's id.

Hosts are the truth about their own guests, but asking all of them needs all of them: a
controller cut off from a host cannot tell its VMs from nothing. So a host also records its VMs in
the ASS map (:mod:`novacron.sync`), which every replica reads locally, through partitions, and
which converges once they heal. That is the map's intended use: placement records written where
they happen, read everywhere.

Each host writes only what it knows, and replaces only what it must, so that the map shows
conflicts instead of hiding them:

* a VM started here is recorded *beside* any other record of its name (a name started twice on
  two sides of a partition shows as two hosts, siblings, for an operator to settle);
* a VM that arrived here by migration replaces its source's record (when this replica has seen it;
  if not, the two stand side by side until the source removes its own);
* a VM gone from here (stopped, or handed over) removes this host's record only, and a host that
  restarts removes its records of the guests that died with its process.

Records are written in the background (each a durable ASS write at this node); ``novacron vm
where NAME`` reads them at any replica.
"""

from __future__ import annotations

import logging

from novacron.runtime import Runtime
from novacron.sync import StateSync, VersionVector

log = logging.getLogger(__name__)

PREFIX = "vm/"


def key_of(name: str) -> str:
    return PREFIX + name


def hosts_in(values: list[bytes]) -> list[str]:
    """The hosts a record names (more than one: a conflict, or a hand-over not yet settled)."""
    return sorted(v.decode("utf-8", "replace") for v in values)


class Inventory:
    """The VM records of the host on ``rt``, in ``sync``'s map (see the module doc)."""

    def __init__(self, rt: Runtime, sync: StateSync) -> None:
        self.rt, self.sync = rt, sync

    def forget_all_but(self, names: set[str]) -> None:
        """Remove this host's records of VMs it does not have: after a restart, the records its
        replica kept of guests that died with the process (a built-in guest lives in it)."""
        me = self.rt.node_id.encode()
        for key in sorted(self.sync.store.keys()):
            if key.startswith(PREFIX) and key[len(PREFIX) :] not in names and me in self.sync.get(key).values:
                self.gone(key[len(PREFIX) :])

    def started(self, name: str) -> None:
        self._write(name, present=True, replaces=())

    def arrived(self, name: str, source: str) -> None:
        self._write(name, present=True, replaces=(source,))

    def gone(self, name: str) -> None:
        self._write(name, present=False, replaces=())

    def _write(self, name: str, *, present: bool, replaces: tuple[str, ...]) -> None:
        self.rt.spawn(self._record(name, present, replaces))

    async def _record(self, name: str, present: bool, replaces: tuple[str, ...]) -> None:
        key, me = key_of(name), self.rt.node_id
        seen = self.sync.get(key).context
        context = VersionVector.of({node: seen.get(node) for node in (me, *replaces)})  # nobody else's
        try:
            if present:
                await self.sync.put(key, me.encode(), context)
            elif me.encode() in self.sync.get(key).values:
                await self.sync.delete(key, context)
        except Exception:  # the record is advice: the VM itself is fine
            log.exception("%s: could not record %s in the inventory", me, name)
