"""Small utilities built only from the contract, so they work on both runtimes."""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from .contract import Runtime

T = TypeVar("T")


async def wait_for(rt: Runtime, aw: Awaitable[T], timeout: float) -> T:
    """Await ``aw`` for at most ``timeout`` seconds of runtime time.

    Raises :class:`TimeoutError` (and cancels ``aw``) when time runs out.
    Works on both runtimes because it uses only ``spawn``, ``call_later`` and
    futures from the contract.
    """
    if isinstance(aw, Coroutine):
        task: Any = rt.spawn(aw)
    else:
        task = aw
    done = rt.create_future()

    def finish(_: Any) -> None:
        if not done.done():
            done.set_result(None)

    task.add_done_callback(finish)
    timer = rt.call_later(timeout, finish, None)
    await done
    timer.cancel()
    if not task.done():
        task.cancel()
        raise TimeoutError(f"timed out after {timeout:g}s")
    return task.result()
