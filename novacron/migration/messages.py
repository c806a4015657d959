"""The migration control protocol (page data itself travels as AMST batches tagged ``mig``).

Source -> destination: :class:`MigrationBegin`, then batches, then :class:`MigrationSwitch`
(pre-copy: "everything is there, check this digest and resume"; post-copy: "resume now, these pages
are still missing"), or :class:`MigrationAbort`. Destination -> source: :class:`MigrationReady`,
:class:`MigrationSwitched`, :class:`MigrationAborted`, and in post-copy :class:`PageRequest` for
faulted pages and :class:`MigrationDone` once every page is there.
"""

from __future__ import annotations

from novacron.runtime import Message


class MigrationBegin(Message, tag="mig-begin", omit_defaults=True):
    migration: str
    pages: int
    page_size: int
    engine: str
    #: the source's Runtime.boot_id: a begin with another one from the same source means the
    #: source restarted, and its migrations still arriving here from before are over
    boot: str = ""
    #: what the source's host says about the VM (its name and shape, see novacron.hosting), opaque
    #: to the migration itself and handed to the destination's ``vm_factory`` with the rest
    meta: bytes = b""


class MigrationReady(Message, tag="mig-ready"):
    migration: str
    ok: bool
    reason: str = ""


class MigrationSwitch(Message, tag="mig-switch"):
    migration: str
    digest: str  # of the paused source memory (pre-copy); "": no check (post-copy, or not asked)
    postcopy: bool = False
    missing: bytes = b""  # post-copy: bitmap (numpy packbits) of pages not yet on the destination


class MigrationSwitched(Message, tag="mig-switched"):
    migration: str
    ok: bool
    reason: str = ""
    #: False: the destination does not know the migration (it restarted, or forgot it long after):
    #: a "no" that says nothing of whether its guest ran there, so not one the source may resume on
    known: bool = True


class PageRequest(Message, tag="mig-pagereq"):
    migration: str
    ids: bytes  # little-endian u32 page ids


class MigrationDone(Message, tag="mig-done"):
    migration: str
    faults: int = 0  # pages the guest faulted on before they arrived
    stalled: float = 0.0  # vCPU seconds the guest waited for them


class MigrationAbort(Message, tag="mig-abort"):
    migration: str
    reason: str


class MigrationAborted(Message, tag="mig-aborted"):
    """The destination heard the abort (the source sends it until then: a destination that
    missed it would keep the VM it was filling)."""

    migration: str


class MigrationGivenUp(Message, tag="mig-given-up"):
    """The destination has given up a migration after it switched over (an operator stopped a
    post-copy guest whose pages were late, say): the guest was the destination's, so the source's
    paused copy is no longer the VM, and must not be resumed. Sent when it happens and again in
    answer to every repeated switch-over."""

    migration: str
    state: str  # what became of the migration there: failed, aborted
