"""The same detector on both runtimes: the simulator and the asyncio backend on loopback.

Reuses the contract suite's harness (tests/contract/harness.py), which runs one coroutine
on a node of either runtime. On loopback the assertions are about behaviour, not timing:
the detector eventually classifies the local link as datacenter (a generous timeout, and
K = 1 so that one window slowed by other work on the machine cannot hold it back for long).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from harness import AsyncioHarness, SimHarness  # noqa: E402

from novacron.mode import DetectionSettings, Mode, ModeChange, ModeDetector  # noqa: E402
from novacron.runtime import Runtime, wait_for  # noqa: E402

# Probe and transfer timeouts default to a quarter of the interval (0.25 s): generous on loopback.
SETTINGS = DetectionSettings(
    interval=1.0,
    hysteresis=1,
    probes=3,
    probe_streams=1,  # the default 4 MiB probe, as real bytes (the default payload): both runtimes
)


@pytest.fixture(params=["sim", "asyncio"])
def harness(request, tmp_path):
    h = (SimHarness if request.param == "sim" else AsyncioHarness)(tmp_path)
    h.running = ["a", "b"]  # nodes whose detector to close (a test that crashes one removes it)
    yield h
    for node in h.running:  # let probe transfers in flight finish before the sockets close
        h.run(node, lambda rt: rt.app.close())
    h.close()


def detector_on(rt: Runtime) -> ModeDetector:
    return ModeDetector(rt, SETTINGS, start_delay=0.0)


async def until_mode(rt: Runtime, peer: str, mode: Mode, timeout: float) -> ModeChange:
    """Wait for ``peer`` to be in ``mode`` (now or after a later change)."""
    det: ModeDetector = rt.app
    reached = rt.create_future()

    def on_change(change: ModeChange) -> None:
        if change.peer == peer and change.new == mode and not reached.done():
            reached.set_result(change)

    unsubscribe = det.subscribe(on_change)  # replays the current state first
    try:
        return await wait_for(rt, reached, timeout)
    finally:
        unsubscribe()


def test_the_detector_classifies_a_local_link_as_datacenter(harness):
    harness.start(["a", "b"], detector_on)

    async def scenario(rt: Runtime):
        change = await until_mode(rt, "b", Mode.DATACENTER, timeout=30.0)
        return change, rt.app.node_mode

    change, node_mode = harness.run("a", scenario, timeout=60.0)
    assert change.peer == "b" and change.new == Mode.DATACENTER and node_mode == Mode.DATACENTER
    window = change.measurements
    assert window.rtt < 0.010 and window.probes_answered >= 1
    assert window.bandwidth_bps > 1e9 and window.bandwidth_source in ("active", "carried")


def test_an_unreachable_peer_is_all_loss_and_keeps_its_mode(harness):
    harness.start(["a", "b"], detector_on)
    harness.run("a", lambda rt: until_mode(rt, "b", Mode.DATACENTER, timeout=30.0), timeout=60.0)
    harness.crash("b")
    harness.running.remove("b")

    async def scenario(rt: Runtime):
        det: ModeDetector = rt.app
        start = rt.now()
        while rt.now() - start < 30.0:
            window = det.latest("b")
            if window is not None and window.started > start and window.probes_sent:
                if window.loss == 1.0:
                    return window, det.mode_of("b")
            await rt.sleep(0.05)
        raise AssertionError("no all-loss window after the crash")

    window, mode = harness.run("a", scenario, timeout=60.0)
    assert window.rtt is None and window.bandwidth_source == "carried"
    assert mode == Mode.DATACENTER  # an inconclusive window changes nothing
