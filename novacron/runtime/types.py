"""Plain data shared by the contract and both runtimes."""

from __future__ import annotations

from dataclasses import dataclass, field


class TransferError(Exception):
    """A bulk transfer could not complete (peer unreachable, stream failed)."""


class RuntimeContractError(Exception):
    """Protocol code used a runtime in a way the contract does not allow."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who a node is and where it sits; topology-aware code reads the labels."""

    node_id: str
    region: str = ""
    zone: str = ""
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def site(self) -> str:
        """The datacenter the node sits in: the ``site`` label when the runtime sets one,
        else its zone (else its own id: a node alone in its site)."""
        return self.labels.get("site") or self.zone or self.node_id


@dataclass(frozen=True, slots=True)
class VirtualPayload:
    """A payload described by its size only (simulator only).

    Lets a simulation move, say, a 64 GiB VM image without allocating it.
    ``meta`` travels with it by reference. The real backend rejects it.
    """

    nbytes: int
    meta: object = None

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            raise ValueError(f"VirtualPayload.nbytes must be >= 0, got {self.nbytes}")

    def __len__(self) -> int:
        return self.nbytes


#: What a bulk transfer moves: real bytes, or (in the simulator) a size.
Payload = bytes | bytearray | memoryview | VirtualPayload


def payload_size(payload: Payload) -> int:
    """Size in bytes of any :data:`Payload`."""
    if isinstance(payload, memoryview):
        return payload.nbytes
    return len(payload)


@dataclass(frozen=True, slots=True)
class TransferReport:
    """What a finished bulk transfer reports to its sender."""

    src: str
    dst: str
    tag: str
    nbytes: int
    streams: int
    congestion: str
    started: float
    finished: float

    @property
    def duration(self) -> float:
        return self.finished - self.started

    @property
    def goodput_bps(self) -> float:
        """Payload bits per second (0 for an instantaneous transfer)."""
        if self.nbytes == 0:
            return 0.0
        return self.nbytes * 8 / self.duration if self.duration > 0 else float("inf")
