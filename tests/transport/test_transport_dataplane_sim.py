"""The one transfer API (mode -> streams/CC, HDE, AMST) in the simulator."""

import pytest

from novacron.config import DWCPConfig, TransportConfig
from novacron.encoding.testdata import MemoryGenerator
from novacron.mode import DetectionSettings, ModeDetector
from novacron.runtime import VirtualPayload
from novacron.sim import Simulation, Topology, topologies
from novacron.transport import ContentMix, DataPlane

MiB = 1 << 20


def pair(rtt: float, bandwidth: float, *, cores: int | None = None) -> Topology:
    return topologies.pair(rtt=rtt, bandwidth=bandwidth, cores=cores)


def run(topo, payload, *, forced_mode="", detect=False, seed=0, congestion="adaptive"):
    dwcp = DWCPConfig(
        forced_mode=forced_mode, detection_interval=1.0, transport=TransportConfig(congestion_algo=congestion)
    )
    sim = Simulation(topo, seed=seed)
    received = []

    def app(rt):
        detector = None
        if detect or forced_mode:
            detector = ModeDetector(
                rt, DetectionSettings.from_config(dwcp), payload=VirtualPayload, start_delay=0.0
            )
        plane = DataPlane(rt, dwcp, detector=detector)
        plane.on_receive("data", lambda src, p: received.append(p))
        return plane

    sim.start(app)

    async def go(rt):
        if detect:
            await rt.sleep(5.0)  # let detection settle first
        return await rt.app.transfer("y", payload, tag="data")

    return sim.run_until_complete("x", go, timeout=3600), received


def text_bytes(n_pages: int) -> bytes:
    gen = MemoryGenerator(seed=1)
    return b"".join(gen.page("text") for _ in range(n_pages))


def test_text_over_a_slow_internet_link_is_compressed_and_arrives_intact():
    payload = text_bytes(512)  # 2 MiB
    result, received = run(pair(rtt=0.08, bandwidth=50e6), payload, forced_mode="internet")
    assert [bytes(p) for p in received] == [payload]
    assert result.mode == "internet" and result.congestion == "bbr"
    assert result.codec.startswith("zstd") and result.ratio < 0.6
    assert result.streams == result.amst.chunks == 2  # the mode asks for 4, the frame has 2 chunks


def test_random_data_over_a_fast_datacenter_link_goes_raw():
    payload = b"".join(MemoryGenerator(seed=2).page("random") for _ in range(256))
    result, received = run(pair(rtt=0.0002, bandwidth=100e9), payload, forced_mode="datacenter")
    assert [bytes(p) for p in received] == [payload]
    assert result.codec == "none" and result.ratio == pytest.approx(1.0, abs=0.01)
    assert result.congestion == "cubic" and result.streams == result.amst.chunks == 3  # 1 MiB + header


def test_an_all_zero_buffer_is_a_zero_frame():
    result, received = run(pair(rtt=0.05, bandwidth=1e9), bytes(4 * MiB), forced_mode="internet")
    assert result.codec == "zero" and result.bytes_out < 100
    assert [bytes(p) for p in received] == [bytes(4 * MiB)]


def test_a_virtual_mixed_payload_uses_the_cost_model_and_charges_cpu_time():
    payload = VirtualPayload(1 << 30, meta=ContentMix(zero=0.3, text=0.3, random=0.4))
    result, received = run(pair(rtt=0.1, bandwidth=1e9), payload, forced_mode="internet")
    assert received == [payload]
    assert 0.3 < result.ratio < 0.75
    assert result.encode_seconds > 0 and result.duration > result.amst.duration


def concurrent_transfers(cores: int | None, n: int) -> list:
    """``n`` compressed transfers started together from x (1 GiB of text each, a 1 Gbit/s link)."""
    dwcp = DWCPConfig()
    sim = Simulation(pair(rtt=0.1, bandwidth=1e9, cores=cores), seed=0)
    received = []

    def app(rt):
        plane = DataPlane(rt, dwcp)
        plane.on_receive("data", lambda src, p: received.append(p))
        return plane

    sim.start(app)
    x = sim.runtime("x")
    text = ContentMix(zero=0.0, text=1.0, random=0.0)
    tasks = [x.spawn(x.app.transfer("y", VirtualPayload(1 << 30, meta=text), tag="data")) for _ in range(n)]
    sim.run()
    assert len(received) == n
    return [task.result() for task in tasks]


def test_on_a_node_with_one_core_concurrent_encodings_queue_and_the_wait_is_reported():
    free = concurrent_transfers(None, 2)
    one_core = concurrent_transfers(1, 2)
    encode = free[0].encode_seconds
    assert encode > 1.0 and all(r.codec.startswith("zstd") for r in free + one_core)
    assert [r.cpu_wait_seconds for r in free] == [0.0, 0.0]
    assert [r.cpu_wait_seconds for r in one_core] == [0.0, pytest.approx(encode)]
    assert one_core[1].duration == pytest.approx(one_core[1].amst.duration + 2 * encode)  # the wait counts
    assert concurrent_transfers(2, 2)[1].cpu_wait_seconds == 0.0


def test_detected_mode_drives_the_choice():
    result, _ = run(pair(rtt=0.0004, bandwidth=40e9), VirtualPayload(256 * MiB), detect=True)
    assert result.mode == "datacenter"
    assert result.streams >= 32 or result.streams == result.amst.chunks


def test_without_detection_the_mode_is_hybrid():
    result, _ = run(pair(rtt=0.02, bandwidth=1e9), VirtualPayload(64 * MiB))
    assert result.mode == "hybrid" and 8 <= result.streams <= 64


def test_the_configured_congestion_control_wins_over_the_mode():
    result, _ = run(
        pair(rtt=0.08, bandwidth=1e9), VirtualPayload(8 * MiB), forced_mode="internet", congestion="cubic"
    )
    assert result.congestion == "cubic"


def test_a_mode_change_reconfigures_the_data_plane():
    sim = Simulation(pair(rtt=0.0004, bandwidth=40e9), seed=0)
    dwcp = DWCPConfig(detection_interval=1.0)

    def app(rt):
        detector = ModeDetector(rt, DetectionSettings.from_config(dwcp, hysteresis=1), payload=VirtualPayload)
        return DataPlane(rt, dwcp, detector=detector)

    sim.start(app)
    sim.faults.degrade(sim.faults.links_between_sites("a", "b"), extra_latency=0.05, at=5.0)
    sim.run(until=12.0)
    plane = sim.runtime("x").app
    assert plane.mode_of("y") == "internet"
    assert plane.mode_changes >= 2  # first detection (datacenter), then the switch to internet
