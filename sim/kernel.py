"""The simulator's scheduling kernel: callbacks, futures and coroutine tasks on SimPy.

Everything the simulator does is a callback at a virtual time. A callback is
one SimPy event (:class:`Call`) carrying the function and its arguments:
no SimPy process and no Store per message, so a message delivery costs one
heap push and one pop. Ties are broken by SimPy's event id, i.e. in
scheduling order, which is what makes a seed replay bit for bit.

Protocol coroutines (``async def``) run on :class:`SimTask`, a minimal
driver in the style of asyncio's Task: a coroutine may await only
:class:`SimFuture` objects (which everything in the simulated runtime
returns); a resolved future wakes its waiters through a zero-delay
:class:`Call`, as asyncio's ``call_soon`` does, so wake-ups never re-enter
the code that resolved the future.
"""

from __future__ import annotations

import logging
from asyncio import CancelledError
from collections.abc import Callable, Coroutine
from heapq import heappush  # the exception class only; no event loop is used
from typing import Any

import simpy
from simpy.events import NORMAL

from novacron.runtime import RuntimeContractError

log = logging.getLogger(__name__)

_PENDING, _DONE, _CANCELLED = 0, 1, 2


def _fire(event: Call) -> None:
    fn = event.fn
    if fn is not None and (event.owner is None or event.owner.alive):
        fn(*event.args)


#: Priority of a Call that must run after every other event of the same instant
#: (SimPy orders events by time, then priority, then scheduling order).
LAST = NORMAL + 1

# SimPy's Environment.step() swaps an event's callback list out for None and
# iterates it; nothing appends to a Call's list, so every Call can share one.
_FIRE_CALLBACKS = [_fire]


class Call(simpy.events.Event):
    """``fn(*args)`` at ``env.now + delay``: one SimPy event, cancellable.

    ``owner`` (a simulated node's runtime, or None) gates the call: if the
    node crashed in the meantime the call is silently skipped, which is how a
    crash drops every timer of the old incarnation at no cost.
    """

    __slots__ = ("fn", "args", "owner")

    def __init__(
        self,
        env: simpy.Environment,
        delay: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        owner: Any = None,
        priority: int = NORMAL,
    ) -> None:
        # Inlined simpy.Event initialisation and Environment.schedule(): this is
        # the simulator's hot path (tests/sim/test_sim_kernel.py pins the
        # ordering this relies on: time, then scheduling order).
        self.env = env
        self.callbacks = _FIRE_CALLBACKS
        self._value = None
        self._ok = True
        self.fn = fn
        self.args = args
        self.owner = owner
        heappush(env._queue, (env._now + delay, priority, next(env._eid), self))

    def cancel(self) -> None:
        self.fn = None

    def cancelled(self) -> bool:
        return self.fn is None


class SimFuture:
    """A one-shot result in simulated time (the asyncio.Future subset protocols use)."""

    __slots__ = ("_env", "_state", "_result", "_exc", "_callbacks")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._state = _PENDING
        self._result: Any = None
        self._exc: BaseException | None = None
        self._callbacks: list[Callable[[SimFuture], None]] = []

    # -- inspection -------------------------------------------------------
    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def result(self) -> Any:
        if self._state == _PENDING:
            raise RuntimeContractError("future is not done yet")
        if self._state == _CANCELLED:
            raise CancelledError()
        if self._exc is not None:
            raise self._exc
        return self._result

    def exception(self) -> BaseException | None:
        if self._state == _PENDING:
            raise RuntimeContractError("future is not done yet")
        if self._state == _CANCELLED:
            raise CancelledError()
        return self._exc

    # -- completion -------------------------------------------------------
    def set_result(self, result: Any) -> None:
        self._complete(_DONE, result, None)

    def set_exception(self, exc: BaseException) -> None:
        if isinstance(exc, type):
            exc = exc()
        self._complete(_DONE, None, exc)

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._complete(_CANCELLED, None, None)
        return True

    def add_done_callback(self, fn: Callable[[SimFuture], None]) -> None:
        if self._state == _PENDING:
            self._callbacks.append(fn)
        else:
            Call(self._env, 0, fn, (self,))

    def _complete(self, state: int, result: Any, exc: BaseException | None) -> None:
        if self._state != _PENDING:
            raise RuntimeContractError("future already done (set twice?)")
        self._state, self._result, self._exc = state, result, exc
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            Call(self._env, 0, fn, (self,))

    def __await__(self):
        if self._state == _PENDING:
            yield self
        return self.result()

    __iter__ = __await__


class SimTask(SimFuture):
    """Drives one protocol coroutine on simulated time.

    ``owner`` is the node runtime that spawned it; when that node crashes the
    task simply never resumes (its coroutine is dropped, as a crashed process'
    stack is).
    """

    __slots__ = ("_coro", "_owner", "_waiting", "_must_cancel", "name")

    def __init__(self, env: simpy.Environment, coro: Coroutine[Any, Any, Any], owner: Any) -> None:
        super().__init__(env)
        if not isinstance(coro, Coroutine):
            raise TypeError(f"spawn() needs a coroutine, got {type(coro).__name__}")
        self._coro = coro
        self._owner = owner
        self._waiting: SimFuture | None = None
        self._must_cancel = False
        self.name = getattr(coro, "__qualname__", "task")
        Call(env, 0, self._start)

    def _start(self) -> None:
        if self._owner is not None and not self._owner.alive:
            self._coro.close()  # the node crashed before the task ran: it never will
            return
        self._step(None, None)

    def cancel(self) -> bool:
        if self._state != _PENDING:
            return False
        self._must_cancel = True
        if self._waiting is not None:
            self._waiting.cancel()  # wakes us up; _step throws CancelledError in
        return True

    def _wakeup(self, fut: SimFuture) -> None:
        if self._owner is not None and not self._owner.alive:
            return
        self._waiting = None
        if fut._state == _DONE and fut._exc is None:
            self._step(fut._result, None)
        elif fut._state == _CANCELLED:
            self._step(None, CancelledError())
        else:
            self._step(None, fut._exc)

    def _step(self, value: Any, exc: BaseException | None) -> None:
        if self._state != _PENDING:
            return
        if self._must_cancel and not isinstance(exc, CancelledError):
            exc = CancelledError()
        self._must_cancel = False
        try:
            if exc is None:
                awaited = self._coro.send(value)
            else:
                awaited = self._coro.throw(exc)
        except StopIteration as stop:
            self.set_result(stop.value)
        except CancelledError:
            SimFuture.cancel(self)
        except BaseException as error:  # noqa: BLE001 - a task's failure is its result
            if not self._callbacks:
                log.error("task %s on %s raised %r", self.name, _owner_name(self._owner), error)
            self.set_exception(error)
        else:
            if isinstance(awaited, SimFuture):
                self._waiting = awaited
                awaited.add_done_callback(self._wakeup)
            else:
                problem = RuntimeContractError(
                    f"task {self.name} awaited {awaited!r}, which does not come from the "
                    "simulated runtime; protocol code may await only runtime futures, "
                    "sleep(), transfers and other protocol coroutines"
                )
                Call(self._env, 0, self._step, (None, problem), self._owner)


def _owner_name(owner: Any) -> str:
    return getattr(owner, "node_id", "simulation")
