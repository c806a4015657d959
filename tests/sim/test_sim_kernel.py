"""The scheduling kernel: calls, futures and coroutine tasks on virtual time."""

from asyncio import CancelledError

import pytest
import simpy

from novacron.runtime import RuntimeContractError
from novacron.sim.kernel import Call, SimFuture, SimTask


class Owner:
    alive = True
    node_id = "n0"


@pytest.fixture
def env():
    return simpy.Environment()


def test_calls_run_in_time_order_and_ties_in_scheduling_order(env):
    seen = []
    Call(env, 2.0, seen.append, ("late",))
    Call(env, 1.0, seen.append, ("first",))
    Call(env, 1.0, seen.append, ("second",))
    env.run()
    assert seen == ["first", "second", "late"]
    assert env.now == 2.0


def test_a_cancelled_call_never_runs(env):
    seen = []
    call = Call(env, 1.0, seen.append, ("x",))
    call.cancel()
    env.run()
    assert seen == [] and call.cancelled()


def test_a_dead_owner_silences_its_calls(env):
    owner = Owner()
    seen = []
    Call(env, 1.0, seen.append, ("x",), owner)
    owner.alive = False
    env.run()
    assert seen == []


def test_future_wakes_an_awaiting_task_with_its_result(env):
    fut = SimFuture(env)

    async def waiter():
        return await fut

    task = SimTask(env, waiter(), None)
    Call(env, 3.0, fut.set_result, (42,))
    env.run()
    assert task.done() and task.result() == 42


def test_future_exception_propagates_into_the_task(env):
    fut = SimFuture(env)

    async def waiter():
        try:
            await fut
        except KeyError as e:
            return f"caught {e.args[0]}"

    task = SimTask(env, waiter(), None)
    Call(env, 1.0, fut.set_exception, (KeyError("k"),))
    env.run()
    assert task.result() == "caught k"


def test_setting_a_future_twice_is_an_error(env):
    fut = SimFuture(env)
    fut.set_result(1)
    with pytest.raises(RuntimeContractError):
        fut.set_result(2)


def test_result_of_a_pending_future_is_an_error(env):
    with pytest.raises(RuntimeContractError):
        SimFuture(env).result()


def test_cancelling_a_task_throws_cancelled_error_into_its_coroutine(env):
    fut = SimFuture(env)
    cleaned = []

    async def worker():
        try:
            await fut
        finally:
            cleaned.append(True)

    task = SimTask(env, worker(), None)
    Call(env, 1.0, task.cancel)
    env.run()
    assert task.cancelled() and cleaned == [True]
    with pytest.raises(CancelledError):
        task.result()


def test_awaiting_something_foreign_is_a_clear_contract_error(env):
    class Foreign:
        def __await__(self):
            yield "not a sim future"

    async def bad():
        await Foreign()

    task = SimTask(env, bad(), None)
    env.run()
    with pytest.raises(RuntimeContractError, match="does not come from the simulated runtime"):
        task.result()


def test_tasks_can_await_tasks(env):
    async def child():
        return 7

    async def parent():
        return await SimTask(env, child(), None) * 6

    task = SimTask(env, parent(), None)
    env.run()
    assert task.result() == 42


def test_spawning_a_non_coroutine_is_a_type_error(env):
    with pytest.raises(TypeError, match="coroutine"):
        SimTask(env, lambda: None, None)
