"""Bulk transfers as flows: max-min fairness, congestion caps, parallel streams."""

import math

import pytest

from novacron.runtime import TransferError, VirtualPayload
from novacron.sim import Simulation, Topology
from novacron.sim.network.congestion import DEFAULT_WINDOW, MSS, flow_cap
from novacron.sim.network.flows import Flow, max_min_rates
from novacron.sim.network.topology import Link

GiB = 1 << 30


def flow(links, cap=math.inf):
    return Flow(tuple(links), 1e9, cap, lambda f: None)


def test_max_min_shares_a_link_equally():
    link = Link("l", 0.0, 8e9)  # 1e9 bytes/s
    flows = [flow([link]) for _ in range(4)]
    max_min_rates(flows)
    assert [f.rate for f in flows] == pytest.approx([0.25e9] * 4)


def test_max_min_gives_capped_flows_their_cap_and_the_rest_to_others():
    link = Link("l", 0.0, 8e9)
    small, big1, big2 = flow([link], cap=0.1e9), flow([link]), flow([link])
    max_min_rates([small, big1, big2])
    assert small.rate == pytest.approx(0.1e9)
    assert big1.rate == pytest.approx(0.45e9) and big2.rate == pytest.approx(0.45e9)


def test_max_min_classic_two_link_example():
    # A crosses both links; B uses only l1, C only l2 (l2 is half the size).
    l1, l2 = Link("l1", 0.0, 8e9), Link("l2", 0.0, 4e9)
    a, b, c = flow([l1, l2]), flow([l1]), flow([l2])
    max_min_rates([a, b, c])
    assert a.rate == pytest.approx(0.25e9) and c.rate == pytest.approx(0.25e9)
    assert b.rate == pytest.approx(0.75e9)


def test_stalled_flows_get_no_rate():
    link = Link("l", 0.0, 8e9)
    a, b = flow([link]), flow([link])
    b.stalled = True
    max_min_rates([a, b])
    assert (a.rate, b.rate) == (pytest.approx(1e9), 0.0)


def test_mathis_cap_for_reno():
    rtt, p = 0.1, 1e-4
    assert flow_cap("reno", rtt, p) == pytest.approx(MSS / rtt * math.sqrt(1.5) / math.sqrt(p))


def test_cubic_beats_reno_on_long_lossy_paths_and_bbr_ignores_light_loss():
    rtt, p = 0.2, 1e-4  # a long fat pipe: CUBIC's own response function dominates
    assert flow_cap("cubic", rtt, p) > 2 * flow_cap("reno", rtt, p)
    assert flow_cap("cubic", 0.01, 1e-3) == flow_cap("reno", 0.01, 1e-3)  # Reno-friendly region
    assert flow_cap("bbr", rtt, p) == pytest.approx(DEFAULT_WINDOW / rtt)


def test_unknown_congestion_control_is_rejected_by_name():
    with pytest.raises(ValueError, match="vegas"):
        flow_cap("vegas", 0.1, 0.0)


def wan_pair(rtt=0.1, bandwidth=1e9, loss=0.0):
    topo = Topology("wan-pair")
    topo.add_site("a", "ra", fabric_latency=0.0)
    topo.add_site("b", "rb", fabric_latency=0.0)
    topo.add_node("x", "a", nic_latency=0.0, nic_bandwidth=10e9)
    topo.add_node("y", "b", nic_latency=0.0, nic_bandwidth=10e9)
    topo.connect_sites("a", "b", rtt=rtt, bandwidth=bandwidth, loss=loss)
    return topo


def transfer_time(topo, nbytes, streams, cc="cubic", seed=0):
    sim = Simulation(topo, seed=seed)

    async def go(rt):
        return await rt.transfer("y", VirtualPayload(nbytes), streams=streams, congestion=cc)

    return sim.run_until_complete("x", go)


def test_a_bottleneck_limited_transfer_takes_size_over_bandwidth_plus_handshake_and_latency():
    report = transfer_time(wan_pair(rtt=0.01, bandwidth=1e9), GiB, streams=4)
    expected = 0.01 + GiB * 8 / 1e9 + 0.005 + 0.005  # handshake RTT, data, last byte, ack
    assert report.duration == pytest.approx(expected, rel=1e-6)
    assert report.nbytes == GiB and report.streams == 4


def test_parallel_streams_beat_one_on_a_lossy_long_path():
    topo = wan_pair(rtt=0.1, bandwidth=1e9, loss=1e-3)
    one = transfer_time(topo, 256 << 20, streams=1)
    eight = transfer_time(wan_pair(rtt=0.1, bandwidth=1e9, loss=1e-3), 256 << 20, streams=8)
    assert eight.goodput_bps > 5 * one.goodput_bps


def test_bbr_outperforms_cubic_under_random_loss():
    cubic = transfer_time(wan_pair(loss=1e-2), 64 << 20, streams=1, cc="cubic")
    bbr = transfer_time(wan_pair(loss=1e-2), 64 << 20, streams=1, cc="bbr")
    assert bbr.goodput_bps > 3 * cubic.goodput_bps


def test_two_transfers_share_a_link_fairly():
    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e9), seed=0)
    reports = []

    async def go(rt):
        a = rt.spawn(rt.transfer("y", VirtualPayload(GiB // 4)))
        b = rt.spawn(rt.transfer("y", VirtualPayload(GiB // 4)))
        reports.extend([await a, await b])

    sim.run_until_complete("x", go)
    # Together they need the time of one 512 MiB transfer.
    assert reports[0].duration == pytest.approx(reports[1].duration)
    assert reports[0].duration == pytest.approx(0.02 + (GiB // 2) * 8 / 1e9, rel=1e-3)


def test_rates_are_recomputed_only_when_flows_start_or_end():
    sim = Simulation(wan_pair(rtt=0.01), seed=0)

    async def go(rt):
        await rt.transfer("y", VirtualPayload(GiB), streams=16)

    sim.run_until_complete("x", go)
    # 16 starts + 16 ends (ends in one batch may share a recomputation)
    assert sim.network.flows.recomputations <= 32


def test_a_partition_longer_than_the_stream_timeout_fails_the_transfer():
    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e8), seed=0, stream_timeout=5.0)
    sim.faults.partition(["x"], ["y"], at=1.0)

    async def go(rt):
        with pytest.raises(TransferError, match="unreachable"):
            await rt.transfer("y", VirtualPayload(GiB))
        return rt.now()

    assert sim.run_until_complete("x", go) == pytest.approx(6.0)


def test_a_short_partition_only_delays_the_transfer():
    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e9), seed=0, stream_timeout=5.0)
    sim.faults.partition(["x"], ["y"], at=0.5, duration=2.0)

    async def go(rt):
        return await rt.transfer("y", VirtualPayload(GiB // 8))

    report = sim.run_until_complete("x", go)
    assert report.duration == pytest.approx(2.0 + 0.02 + (GiB // 8) * 8 / 1e9, rel=1e-3)


def test_a_receiver_crash_fails_the_transfer():
    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e9), seed=0)
    sim.faults.crash("y", at=1.0)

    async def go(rt):
        with pytest.raises(TransferError, match="crashed"):
            await rt.transfer("y", VirtualPayload(GiB))
        return True

    assert sim.run_until_complete("x", go)


def test_the_receiver_gets_the_payload_object_under_its_tag():
    sim = Simulation(wan_pair(), seed=0)
    got = []
    sim.runtime("y").on_transfer("img", lambda src, p: got.append((src, p)))
    payload = b"x" * 1000

    async def go(rt):
        await rt.transfer("y", payload, tag="img")

    sim.run_until_complete("x", go)
    assert got == [("x", payload)]


@pytest.mark.parametrize("streams", [0, -1, 1.5])
def test_invalid_stream_counts_are_rejected(streams):
    sim = Simulation(wan_pair(), seed=0)

    async def go(rt):
        with pytest.raises(ValueError, match="streams"):
            await rt.transfer("y", b"x", streams=streams)
        return True

    assert sim.run_until_complete("x", go)


def test_a_stream_sends_records_back_to_back_at_the_bottleneck_rate():
    from novacron.runtime import Message

    class Rec(Message, tag="sim-rec"):
        i: int

    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e9), seed=0)
    arrivals = []
    sim.runtime("y").on_stream(Rec, lambda src, h, d: arrivals.append((sim.now, h.i, len(d))))

    async def go(rt):
        stream = await rt.open_stream("y")
        opened = rt.now()
        for i in range(4):
            await stream.send(Rec(i), VirtualPayload(1 << 20))
        return opened, rt.now()

    opened, finished = sim.run_until_complete("x", go)
    sim.run()  # the last record is still in flight when the sender is done
    assert opened == pytest.approx(0.01)  # one RTT of handshake
    assert [i for _, i, _ in arrivals] == [0, 1, 2, 3]
    assert finished - opened == pytest.approx(4 * (1 << 20) * 8 / 1e9, rel=1e-3)
    assert arrivals[-1][0] == pytest.approx(finished + 0.005, rel=1e-3)


def test_an_injected_stream_reset_fails_the_send_in_flight_and_later_ones():
    from novacron.runtime import Message

    class Rec(Message, tag="sim-rec2"):
        i: int

    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e8), seed=0)
    sim.faults.kill_streams("x", "y", at=0.5)

    async def go(rt):
        stream = await rt.open_stream("y")
        with pytest.raises(TransferError, match="reset"):
            await stream.send(Rec(0), VirtualPayload(60 << 20))  # 5 s at 100 Mbit/s
        with pytest.raises(TransferError, match="reset"):
            await stream.send(Rec(1), b"x")
        return rt.now()

    assert sim.run_until_complete("x", go) == pytest.approx(0.5)


def test_back_to_back_chunks_reuse_the_solved_rates():
    from novacron.runtime import Message

    class Piece(Message, tag="sim-piece"):
        i: int

    sim = Simulation(wan_pair(rtt=0.01, bandwidth=1e9), seed=0)

    async def go(rt):
        streams = [await rt.open_stream("y") for _ in range(4)]

        async def pump(stream):
            for i in range(50):
                await stream.send(Piece(i), VirtualPayload(1 << 20))

        tasks = [rt.spawn(pump(s)) for s in streams]
        for t in tasks:
            await t

    sim.run_until_complete("x", go)
    flows = sim.network.flows
    assert flows.recomputations >= 50  # one per chunk boundary (the four streams share instants)
    assert flows.solves < 20  # but the same four-flow set was solved only a few times
