"""The bulk-transfer load generator, moving data through the DWCP data plane instead.

Same arrivals, peers and observer as :class:`~.bulk_driver.BulkTransferDriver`; each transfer is
``DataPlane.transfer`` of a simulated buffer whose ``content`` tells HDE what it is made of, so the
data plane picks streams, congestion control and codec itself. Protocol-style code: only the
runtime contract and ``novacron`` protocol packages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from novacron.runtime import Runtime, TransferError, VirtualPayload
from novacron.transport import ContentMix, DataPlane, TransferResult

from .bulk_driver import BulkTransferDriver, TransferObserver, TransferPlan


class DataPlaneDriver(BulkTransferDriver):
    def __init__(
        self,
        rt: Runtime,
        plane: DataPlane,
        plans: Sequence[TransferPlan],
        contents: Mapping[str, ContentMix],
        *,
        observer: TransferObserver | None = None,
        on_result=None,
    ) -> None:
        self.plane = plane
        self.contents = dict(contents)
        self.on_result = on_result
        super().__init__(rt, plans, observer=observer)
        for plan in plans:
            plane.on_receive(plan.tag, self._on_received)

    async def _send(self, plan: TransferPlan, dst: str, nbytes: int, streams: int, congestion: str) -> None:
        if self.observer is not None:
            self.observer.started(plan, self.rt.node_id, dst, nbytes, streams)
        payload = VirtualPayload(nbytes, meta=self.contents.get(plan.tag, ContentMix()))
        try:
            result: TransferResult = await self.plane.transfer(dst, payload, tag=plan.tag)
        except TransferError as error:
            if self.observer is not None:
                self.observer.failed(plan, self.rt.node_id, dst, error)
            return
        if self.on_result is not None:
            self.on_result(self.rt.node_id, plan, result)
