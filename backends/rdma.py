"""Transport selection: RDMA when asked for and possible, TCP otherwise, with the reason.

DWCP moves VM memory over RDMA where the fabric has it. This build has **no
RDMA data path**: nothing here has ever run on RDMA hardware, and pretending
otherwise would turn a missing feature into silent data loss. So
:func:`select_transport` detects whether RDMA *could* be used (``pyverbs``
importable and at least one device listed) and says so, but picks TCP in every
case, with a reason an operator can act on. When an RDMA transport is
implemented and tested on hardware, set :data:`RDMA_DATA_PATH_IMPLEMENTED`
and selection will pick it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

#: Whether this build can move data over RDMA. It cannot (see the module docstring).
RDMA_DATA_PATH_IMPLEMENTED = False


@dataclass(frozen=True, slots=True)
class TransportChoice:
    """Which transport bulk data uses, and why."""

    kind: Literal["tcp", "rdma"]
    reason: str


def _rdma_devices() -> tuple[list[Any] | None, str]:
    """``(devices, "")`` or ``(None, why pyverbs is unusable)``."""
    try:
        device = importlib.import_module("pyverbs.device")
    except ImportError as exc:
        return None, f"pyverbs not installed ({exc})"
    try:
        return list(device.get_device_list()), ""
    except Exception as exc:  # pyverbs raises its own errors when rdma-core is unusable
        return None, f"pyverbs could not list RDMA devices ({exc})"


def select_transport(enable_rdma: bool) -> TransportChoice:
    """Pick the bulk-data transport and log the choice with its reason."""
    if not enable_rdma:
        choice = TransportChoice("tcp", "enable_rdma is false")
    else:
        devices, problem = _rdma_devices()
        if devices is None:
            choice = TransportChoice("tcp", problem)
        elif not devices:
            choice = TransportChoice("tcp", "no RDMA device")
        elif not RDMA_DATA_PATH_IMPLEMENTED:
            choice = TransportChoice(
                "tcp",
                f"rdma requested and available ({len(devices)} device(s)) but the RDMA data "
                "path is not implemented in this build; using tcp",
            )
        else:  # pragma: no cover - no build has an RDMA data path yet
            choice = TransportChoice("rdma", f"{len(devices)} RDMA device(s) found")
    log.info("transport: %s (%s)", choice.kind, choice.reason)
    return choice
