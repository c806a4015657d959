"""The client workload of a campaign: a few clients doing random key-value operations.

Values are unique (client and counter), so a read names the write it saw
and the linearizability checker has as much to go on as possible. Clients
run one operation at a time, like Jepsen's processes; an operation that
times out is recorded as ``info`` (unknown outcome) and the client goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

from novacron.consensus import History
from novacron.consensus.client import KVClient, OutcomeUnknown, Rejected
from novacron.runtime import Runtime


@dataclass(frozen=True)
class Workload:
    clients: int = 3
    keys: int = 3
    #: mean pause between one client's operations (exponential), simulated seconds
    think: float = 0.05
    #: an operation without an answer for this long is recorded as unknown (``info``)
    op_timeout: float = 2.0
    retry_interval: float = 0.3
    #: relative frequencies of get, put, cas, delete
    mix: tuple[float, float, float, float] = (0.4, 0.3, 0.2, 0.1)

    def __post_init__(self) -> None:
        if self.clients < 1 or self.keys < 1:
            raise ValueError(f"a workload needs >= 1 client and key, got {self.clients} and {self.keys}")
        if self.op_timeout <= 0 or self.think < 0:
            raise ValueError("op_timeout must be > 0 and think >= 0")
        if len(self.mix) != 4 or min(self.mix) < 0 or sum(self.mix) <= 0:
            raise ValueError(f"mix must be 4 non-negative weights (get, put, cas, delete), got {self.mix}")


async def run_client(
    rt: Runtime, members: list[str], quorum: int, workload: Workload, history: History, until: float
) -> int:
    """Issue operations until simulated time ``until``; returns how many completed ``ok``."""
    kv = KVClient(
        rt,
        members,
        history=history,
        quorum=quorum,
        timeout=workload.op_timeout,
        retry_interval=workload.retry_interval,
        client_id=rt.node_id,
    )
    rng = rt.random
    keys = [f"k{i}" for i in range(workload.keys)]
    written = 0
    ok = 0
    while rt.now() < until:
        if workload.think:
            await rt.sleep(rng.expovariate(1.0 / workload.think))
        key = rng.choice(keys)
        kind = rng.choices(("get", "put", "cas", "delete"), weights=workload.mix)[0]
        written += 1
        value = f"{rt.node_id}:{written}".encode()
        try:
            if kind == "get":
                await kv.get(key)
            elif kind == "put":
                await kv.put(key, value)
            elif kind == "cas":
                # Compare with a value this key plausibly holds, so that some swaps succeed.
                recent = history.recent(30)
                candidates = [op.value for op in recent if op.key == key and op.value is not None]
                expected = rng.choice(candidates[-5:]) if candidates and rng.random() < 0.8 else None
                await kv.cas(key, expected, value)
            else:
                await kv.delete(key)
            ok += 1
        except (OutcomeUnknown, Rejected):
            continue
    return ok
