"""Histories of client operations, as Jepsen and Porcupine record them.

Every operation is *invoked* at one time and *completes* later with one of
three outcomes: ``ok`` (it took effect, with this output), ``fail`` (it
certainly did not take effect) or ``info`` (unknown: the client timed out,
so it may or may not have taken effect, at any time after its invocation).
The linearizability checker (:mod:`.linearizability`) reads these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["get", "put", "delete", "cas"]
Status = Literal["pending", "ok", "fail", "info"]


@dataclass(frozen=True)
class Operation:
    """One key-value operation by one client.

    ``value`` is what a put writes or what a compare-and-set writes when it
    swaps; ``expected`` what a compare-and-set compares with (None: absent).
    Outputs: ``read`` is what a get returned (None: absent), ``swapped``
    whether a compare-and-set took effect. ``complete`` is None while
    pending and for ``info`` operations (they may take effect at any time).
    """

    id: int
    client: str
    kind: Kind
    key: str
    invoke: float
    value: bytes | None = None
    expected: bytes | None = None
    complete: float | None = None
    status: Status = "pending"
    read: bytes | None = None
    swapped: bool | None = None

    def describe(self) -> str:
        args = {
            "get": "",
            "put": f", {self.value!r}",
            "delete": "",
            "cas": f", {self.expected!r} -> {self.value!r}",
        }[self.kind]
        out = {"get": f" = {self.read!r}", "cas": f" = {self.swapped}"}.get(self.kind, "")
        end = "..." if self.complete is None else f"{self.complete:.6f}"
        call = f"{self.kind}({self.key!r}{args}){out}"
        return f"#{self.id} {self.client} {call} [{self.status}] {self.invoke:.6f}-{end}"


class History:
    """An append-only record of operations; clients call :meth:`invoke` then one of
    :meth:`ok`, :meth:`fail`, :meth:`info` for each operation."""

    def __init__(self) -> None:
        self._ops: list[Operation] = []

    def invoke(
        self,
        client: str,
        kind: Kind,
        key: str,
        time: float,
        *,
        value: bytes | None = None,
        expected: bytes | None = None,
    ) -> int:
        op = Operation(len(self._ops), client, kind, key, time, value=value, expected=expected)
        self._ops.append(op)
        return op.id

    def ok(self, op_id: int, time: float, *, read: bytes | None = None, swapped: bool | None = None) -> None:
        self._complete(op_id, status="ok", complete=time, read=read, swapped=swapped)

    def fail(self, op_id: int, time: float) -> None:
        self._complete(op_id, status="fail", complete=time)

    def info(self, op_id: int) -> None:
        """The outcome is unknown (a timeout): the operation may take effect at any later time."""
        self._complete(op_id, status="info", complete=None)

    def _complete(self, op_id: int, **changes: object) -> None:
        op = self._ops[op_id]
        if op.status != "pending":
            raise ValueError(f"operation #{op_id} already completed ({op.status})")
        self._ops[op_id] = replace(op, **changes)

    @property
    def operations(self) -> list[Operation]:
        """Every operation so far; pending ones count as ``info`` for checking."""
        return list(self._ops)

    def recent(self, n: int) -> list[Operation]:
        """The last ``n`` operations invoked (cheap, for workloads that look back)."""
        return self._ops[-n:]

    def __len__(self) -> int:
        return len(self._ops)

    def to_dataframe(self):
        """One row per operation (pandas), for looking at a history in a notebook."""
        import pandas as pd

        return pd.DataFrame([op.__dict__ for op in self._ops])
