"""A client that holds no replica (``novacron.sync.StateClient``), on both runtimes: reads and
writes at any replica, the next replica when one does not answer, refusals with their reason."""

import pytest

from novacron.sync import NoReplicaAnswered, StateClient, StateSync, SyncSettings

REPLICAS = ["n0", "n1", "n2"]


def app(rt):
    if rt.node_id == "client":
        return StateClient(rt, REPLICAS, timeout=0.5)
    return StateSync(rt, peers=REPLICAS, settings=SyncSettings(interval=0.2))


def test_reads_and_writes_through_a_replica(harness):
    harness.start([*REPLICAS, "client"], app)

    async def session(rt):
        client = rt.app
        first = await client.put("vm/1", b"host-a")
        assert first.values == [b"host-a"]
        again = await client.put("vm/1", b"host-b", replace_current=True)  # replaces host-a
        blind = await client.put("vm/1", b"host-c")  # concurrent with host-b: both kept
        read = await client.get("vm/1")
        gone = await client.delete("vm/1", read.context)
        return again, blind, read, gone, await client.get("vm/1"), await client.get("never")

    again, blind, read, gone, after, never = harness.run("client", session, timeout=30.0)
    assert again.values == [b"host-b"]
    assert sorted(blind.values) == [b"host-b", b"host-c"] and sorted(read.values) == [b"host-b", b"host-c"]
    assert gone.values == [] and after.values == [] and never.values == []


def test_a_replica_that_does_not_answer_is_passed_over(harness):
    harness.start([*REPLICAS, "client"], app)
    harness.crash("n0")

    async def session(rt):
        state = await rt.app.put("k", b"v")
        return state, await rt.app.get("k")

    state, read = harness.run("client", session, timeout=30.0)
    assert state.values == [b"v"] and read.values == [b"v"]


def test_refusals_name_the_reason(harness):
    harness.start([*REPLICAS, "client"], app)

    async def oversized(rt):
        await rt.app.put("k", b"x" * ((1 << 20) + 1))

    with pytest.raises(ValueError, match=r"n0 refused the put: a value is at most 1048576 bytes"):
        harness.run("client", oversized, timeout=30.0)

    async def empty_key(rt):
        await rt.app.get("")

    with pytest.raises(ValueError, match="a key is a non-empty string"):
        harness.run("client", empty_key, timeout=30.0)


def test_no_replica_answering_is_an_unknown_outcome(harness):
    harness.start([*REPLICAS, "client"], app)
    for replica in REPLICAS:
        harness.crash(replica)

    async def session(rt):
        await rt.app.put("k", b"v")

    with pytest.raises(NoReplicaAnswered, match="no replica of n0, n1, n2 answered the put of 'k'"):
        harness.run("client", session, timeout=30.0)


def test_a_client_needs_replicas_and_a_timeout():
    with pytest.raises(ValueError, match="at least one replica"):
        StateClient(None, [])
    with pytest.raises(ValueError, match="timeout must be > 0"):
        StateClient(None, ["n0"], timeout=0)
