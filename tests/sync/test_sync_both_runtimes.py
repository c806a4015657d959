"""ASS unchanged on both runtimes: three replicas (simulated, or real processes' runtimes over
loopback TCP) written concurrently converge to one map, and a replica that crashes and restarts
keeps its acknowledged writes and catches up."""

from novacron.sync import StateSync, SyncSettings

NODES = ["n0", "n1", "n2"]
FAST = SyncSettings(fanout=1, forward=True, interval=0.1)  # pushes reach one peer; repairs do the rest


def app(rt):
    return StateSync(rt, settings=FAST)


async def converged(harness, rt, keys, timeout=20.0):
    """Wait (on the runtime's clock) until every replica holds the same states of ``keys``."""
    waited = 0.0
    while waited < timeout:
        states = [[harness.runtime(n).app.get(k) for k in keys] for n in NODES]
        if all(s == states[0] for s in states) and all(st.values for st in states[0]):
            return states[0]
        await rt.sleep(0.05)
        waited += 0.05
    raise AssertionError(f"not converged after {timeout} s: {states}")


def test_concurrent_writes_at_every_replica_converge(harness):
    harness.start(NODES, app)
    keys = [f"k{i}" for i in range(10)]

    async def write_all(rt):
        for node in NODES:  # every replica writes every key, blindly: siblings everywhere
            service = harness.runtime(node).app
            for key in keys:
                await service.put(key, f"{node}:{key}".encode())
        return await converged(harness, rt, keys)

    states = harness.run("n0", write_all, timeout=60.0)
    assert all(
        sorted(s.values) == sorted(f"{n}:{k}".encode() for n in NODES)
        for s, k in zip(states, keys, strict=True)
    )

    async def resolve(rt):  # n1 reads k0's three siblings and replaces them with one value
        service = harness.runtime("n1").app
        await service.put("k0", b"resolved", service.get("k0").context)
        return await converged(harness, rt, ["k0"])

    assert harness.run("n0", resolve, timeout=60.0)[0].values == [b"resolved"]


def test_a_restarted_replica_keeps_its_writes_and_catches_up(harness):
    harness.start(NODES, app)

    async def write(rt):
        await rt.app.put("before", b"1")
        return await converged(harness, rt, ["before"])

    harness.run("n2", write, timeout=60.0)
    harness.crash("n2")

    async def while_down(rt):
        await rt.app.put("during", b"2")

    harness.run("n0", while_down, timeout=60.0)
    harness.restart("n2")
    assert harness.runtime("n2").app.get("before").values == [b"1"]  # from its own storage

    async def caught_up(rt):
        return await converged(harness, rt, ["before", "during"])

    states = harness.run("n0", caught_up, timeout=60.0)
    assert [s.values for s in states] == [[b"1"], [b"2"]]
