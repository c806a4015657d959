"""Small utilities built only from the contract, so they work on both runtimes."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Coroutine
from typing import Any, TypeVar

from .contract import Runtime

T = TypeVar("T")


def node_scoped_id(rt: Runtime, local: str) -> str:
    """``<node>/<local>``, unique across the node's restarts: ``@<boot id>`` follows when the
    runtime has one (see :attr:`Runtime.boot_id`). For ids numbered from 1 on each start."""
    boot = rt.boot_id
    return f"{rt.node_id}/{local}@{boot}" if boot else f"{rt.node_id}/{local}"


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


async def wait_done(rt: Runtime, future: Any, timeout: float) -> bool:
    """Wait until ``future`` is done or ``timeout`` seconds pass, whichever is first; returns
    whether it is done. Unlike :func:`wait_for`, the future is neither awaited nor cancelled:
    for a reply that may still come after the caller has re-sent its request."""
    if future.done():
        return True
    waker = rt.create_future()

    def wake(_: Any = None) -> None:
        if not waker.done():
            waker.set_result(None)

    timer = rt.call_later(timeout, wake)
    future.add_done_callback(wake)
    try:
        await waker
    finally:
        timer.cancel()
    return future.done()


async def first_completed(rt: Runtime, tasks: Collection[Any]) -> list[Any]:
    """Wait until at least one of ``tasks`` is done; return the ones that are, in their order.

    asyncio.wait's ``FIRST_COMPLETED`` on both runtimes. Results are not taken: call
    ``result()`` on each to see its outcome (and its exception, if it failed)."""
    if not tasks:
        raise ValueError("first_completed needs at least one task")
    done = [task for task in tasks if task.done()]
    if done:
        return done
    woken = rt.create_future()

    def wake(_: Any) -> None:
        if not woken.done():
            woken.set_result(None)

    for task in tasks:
        task.add_done_callback(wake)
    await woken
    return [task for task in tasks if task.done()]
