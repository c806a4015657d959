"""Pre-copy and post-copy in the simulator: correct memory, the stop rule, auto-converge,
failures, the analytic model, determinism, sharing the link."""

from collections import defaultdict

import numpy as np
import pytest
from migration_testkit import MIX, MiB, SimMigration, link

from novacron.migration import MigrationError, MigrationSettings, ModelVM, UniformWorkload, model
from novacron.migration.messages import MigrationReady, MigrationSwitch, MigrationSwitched
from novacron.migration.service import RETRY_INTERVAL
from novacron.migration.source import SourceRun
from novacron.runtime import VirtualPayload
from novacron.transport.dataplane import ContentMix

RANDOM = ContentMix(0.0, 0.0, 1.0)
BASELINE_UNCAPPED = MigrationSettings.qemu_defaults(max_bandwidth_bps=None)


def test_precopy_moves_the_memory_exactly_and_resumes_on_the_destination():
    m = SimMigration()
    report = m.run(MigrationSettings.dwcp(), workload=UniformWorkload(3000, 4096))
    assert report.ok and report.converged
    assert np.array_equal(m.destination.versions, m.source.versions)
    assert np.array_equal(m.destination.classes, m.source.classes)
    assert m.destination.running and not m.source.running
    assert report.downtime <= 0.3 + 0.01  # within the limit (plus the switch-over message)
    assert report.rounds[-1].phase == "stop-and-copy"
    assert report.rounds[0].pages == 64 * MiB // 4096  # round 0 sends everything


def test_the_same_seed_gives_the_same_migration_and_another_seed_another():
    def once(seed):
        m = SimMigration(seed=seed)
        r = m.run(MigrationSettings.dwcp(), workload=UniformWorkload(3000, 4096))
        return r.total_time, r.downtime, r.bytes_sent, [x.pages for x in r.rounds], m.sim.trace_hash()

    assert once(3) == once(3)
    assert once(3) != once(4)


def test_dwcp_sends_zero_pages_as_ids_and_compresses_text_pages():
    m = SimMigration()
    dwcp = m.run(MigrationSettings.dwcp(), mix=MIX)
    base = SimMigration().run(BASELINE_UNCAPPED, mix=MIX)
    assert dwcp.bytes_sent < 0.6 * dwcp.memory_bytes  # 30% zero, 30% text compressed
    assert 0.69 * base.memory_bytes < base.bytes_sent < 0.72 * base.memory_bytes  # zero pages only


def test_re_sent_pages_go_as_xbzrle_deltas():
    # (no zero pages: a zero page written to was never cached, so it goes in full, as in QEMU)
    m = SimMigration(link(bandwidth=100e6))
    mix = ContentMix(0.0, 0.5, 0.5)
    report = m.run(MigrationSettings.dwcp(streams=2), mix=mix, workload=UniformWorkload(2000, 2048))
    later = [r for r in report.rounds[1:] if r.pages]
    assert later and sum(r.delta for r in later) > 0.9 * sum(r.pages for r in later)
    assert np.array_equal(m.destination.versions, m.source.versions)


def test_a_workload_that_outruns_the_link_never_converges_without_auto_converge():
    settings = BASELINE_UNCAPPED.with_(max_rounds=8)
    # 60k writes/s over a 128 MiB working set, against ~30k pages/s of link: each round re-dirties
    # ~78% of the working set, which takes ~0.8 s to send, never under the 0.3 s limit.
    heavy = UniformWorkload(rate=60000, working_set=32768)
    m = SimMigration()
    report = m.run(settings, memory=256 * MiB, workload=heavy)
    assert report.ok and not report.converged and report.precopy_rounds == 8
    assert report.downtime > 0.3  # the stop-and-copy had to take the whole working set
    assert np.array_equal(m.destination.versions, m.source.versions)  # still correct

    m2 = SimMigration()
    throttled = m2.run(settings.with_(auto_converge=True, max_rounds=30), memory=256 * MiB, workload=heavy)
    assert throttled.converged and throttled.downtime <= 0.31
    assert throttled.final_throttle >= 0.2  # QEMU's initial step at least
    throttles = [r.throttle for r in throttled.rounds]
    assert throttles == sorted(throttles)  # only ever stepped up
    assert np.array_equal(m2.destination.versions, m2.source.versions)


def test_a_link_failure_fails_the_migration_cleanly_and_the_source_keeps_running():
    async def cut(rt):
        await rt.sleep(0.2)  # mid round 0
        m.sim.faults.partition(["src"], ["dst"])

    m = SimMigration()
    with pytest.raises(MigrationError) as failure:
        m.run(MigrationSettings.dwcp(timeout=5.0), workload=UniformWorkload(1000, 1024), during=cut)
    report = failure.value.report
    assert report is not None and report.outcome.startswith("failed")
    assert m.source.running and m.source.throttle == 0.0
    assert not m.destination.running


def test_the_engine_matches_the_analytic_pre_copy_model_where_it_holds():
    pages = 256 * MiB // 4096
    for rate, working_set in [(5000, pages // 4), (15000, pages // 8)]:
        m = SimMigration(link(rtt=0.0005, bandwidth=1e9))
        r = m.run(
            BASELINE_UNCAPPED, memory=256 * MiB, mix=RANDOM, workload=UniformWorkload(rate, working_set)
        )
        expected = model.precopy(pages, rate, working_set, 1e9)
        assert r.precopy_rounds == len(expected.rounds)
        for sent, predicted in zip(
            [x.pages for x in r.rounds[1:]], [*expected.rounds[1:], expected.stop_pages], strict=True
        ):
            assert sent == pytest.approx(predicted, rel=0.08)
        assert r.total_time == pytest.approx(expected.total_time, rel=0.05)


def test_a_migration_shares_the_link_with_other_traffic():
    alone = SimMigration().run(BASELINE_UNCAPPED, memory=128 * MiB, mix=RANDOM)

    async def competing(rt):
        await rt.transfer("dst", VirtualPayload(256 * MiB), streams=1)

    shared = SimMigration().run(BASELINE_UNCAPPED, memory=128 * MiB, mix=RANDOM, during=competing)
    assert shared.ok and shared.total_time > 1.6 * alone.total_time  # about half the link


@pytest.mark.parametrize("pipeline", [2, 3])
def test_pipelined_batches_keep_a_long_link_busy(pipeline):
    """Batches in flight finish one after another, so the link never waits for a round trip
    between them: round 0 takes the link's time for its bytes plus about one RTT. (Batches of
    one size launched together used to finish together, leaving the link idle for a round
    trip per batch in flight: +0.3 s here.)"""
    rtt, bandwidth = 0.1, 1e9
    m = SimMigration(link(rtt=rtt, bandwidth=bandwidth))
    r = m.run(MigrationSettings.dwcp(streams=4, pipeline=pipeline), memory=256 * MiB, mix=RANDOM)
    first = r.rounds[0]
    assert first.duration <= first.bytes_out * 8 / bandwidth + 2.5 * rtt


def test_a_second_migration_to_a_peer_sizes_its_first_batches_by_the_rate_the_first_reached(monkeypatch):
    """Runs of raw pages are sized by time (40 ms at the page rate), and a round's running rate
    starts low: the first migration to a peer grows its batches from 32 MiB as its rate comes
    in; the next one starts at least at the size the first ended with."""
    sizes: dict[str, list[int]] = defaultdict(list)
    send = SourceRun._send_batch

    async def recording(self, batch, *args):
        sizes[self.id].append(batch.stats.bytes_in // MiB)
        await send(self, batch, *args)

    monkeypatch.setattr(SourceRun, "_send_batch", recording)
    m = SimMigration(link(bandwidth=10e9))
    for _ in range(2):
        assert m.run(MigrationSettings.dwcp(streams=4), memory=512 * MiB, mix=RANDOM).ok
    first, second = sizes.values()
    assert first[:3] == [16, 32, 32]  # (the first cut short: see the pipelining test)
    assert second[0] == 16 and second[1] >= max(first) > 32


def test_compression_does_not_make_the_source_the_bottleneck_of_a_long_link():
    """The codec selector is told the link's rate over the time a batch was in flight, not over
    the round (which includes the source's own encoding): judged by the round, a 1 Gbit/s link
    looked like 0.4-0.6 Gbit/s, zstd-9 was chosen, and each batch took 0.24 s to encode for
    0.13 s on the wire (round 0: 1.89x its wire time)."""
    m = SimMigration(link(rtt=0.1, bandwidth=1e9))
    first = m.run(MigrationSettings.dwcp(), memory=512 * MiB, mix=MIX).rounds[0]
    assert first.duration <= 1.5 * first.bytes_out * 8 / 1e9


def test_a_second_migration_to_a_peer_compresses_for_the_link_the_first_measured():
    """A first migration starts from the mode's nominal rate (100 Mbit/s on the internet), so its
    first batches get zstd-9 until it has measured the link; the next one starts from what the
    first measured (round 0: 1.70x its wire time, then 1.12x)."""
    m = SimMigration(link(rtt=0.1, bandwidth=1e9))
    first, second = (m.run(MigrationSettings.dwcp(), memory=256 * MiB, mix=MIX).rounds[0] for _ in range(2))
    assert second.duration < 0.75 * first.duration
    assert second.duration <= 1.2 * second.bytes_out * 8 / 1e9


def test_the_baseline_obeys_qemus_bandwidth_cap():
    m = SimMigration(link(bandwidth=10e9))
    settings = MigrationSettings.qemu_defaults()
    r = m.run(settings, memory=256 * MiB, mix=RANDOM)
    # a token bucket over batches: at most one batch ahead of the cap
    assert r.total_time >= (r.bytes_sent - settings.batch_bytes) * 8 / settings.max_bandwidth_bps
    assert r.total_time <= 1.05 * r.bytes_sent * 8 / settings.max_bandwidth_bps  # and no slower


def test_postcopy_resumes_at_once_then_pulls_faulted_pages_first():
    hot = UniformWorkload(20000, 4096)
    m = SimMigration(link(rtt=0.02, bandwidth=1e9), dest_workload=hot)
    report = m.run(MigrationSettings.dwcp(engine="postcopy", postcopy_after=0), workload=hot)
    dest, src = m.destination, m.source
    assert report.ok and report.downtime < 0.05  # only the switch-over message
    assert dest.missing_count() == 0
    assert report.postcopy["urgent_pages"] > 0 and dest.stats()["faults"] > 0
    # the guest's cost of post-copy comes back in the report
    assert report.postcopy["guest_faults"] == dest.stats()["faults"]
    assert report.postcopy["guest_stalled_s"] == pytest.approx(dest.stats()["stalled_s"])
    untouched = dest.versions == src.versions
    assert np.array_equal(dest.classes[untouched], src.classes[untouched])
    assert (dest.versions[~untouched] > src.versions[~untouched]).all()  # only the guest's own writes differ


def test_a_destination_without_a_vm_factory_refuses():
    from novacron.migration import Migrator, ModelVM
    from novacron.sim import Simulation

    sim = Simulation(link(), seed=0)
    sim.start(lambda rt: Migrator(rt))

    async def go(rt):
        return await rt.app.migrate(ModelVM(rt, 16), "dst", MigrationSettings.dwcp())

    with pytest.raises(MigrationError, match="accepts no migrations"):
        sim.run_until_complete("src", go, timeout=100)


def test_a_destination_whose_memory_differs_refuses_to_resume_and_the_source_carries_on():
    async def corrupt(rt):
        while not m.destinations or not m.destination.present[2000]:  # outside the working set
            await rt.sleep(0.01)
        m.destination.versions[2000] += 7  # as if a page were damaged after it arrived

    m = SimMigration()
    with pytest.raises(MigrationError, match="digest differs"):
        m.run(MigrationSettings.dwcp(), workload=UniformWorkload(1000, 1024), during=corrupt)
    assert m.source.running and not m.destination.running


def test_without_the_digest_check_the_same_damage_goes_unnoticed():
    async def corrupt(rt):
        while not m.destinations or not m.destination.present[2000]:
            await rt.sleep(0.01)
        m.destination.versions[2000] += 7

    m = SimMigration()
    report = m.run(MigrationSettings.dwcp(verify_memory=False), during=corrupt)
    assert report.ok and not np.array_equal(m.destination.versions, m.source.versions)


def test_the_destination_lets_go_of_each_vm_once_its_migration_is_over(monkeypatch):
    from novacron.migration import service

    monkeypatch.setattr(service, "FINISHED_MEMORY", 2)
    m = SimMigration()
    engines = ["precopy", "postcopy", "precopy"]
    for engine in engines:
        assert m.run(MigrationSettings.dwcp(engine=engine), memory=4 * MiB).ok
    receiver = m.sim.runtime("dst").app
    ids = list(m.destinations)
    assert list(receiver.incoming) == ids[1:], "the oldest finished record is forgotten"
    assert all(r.vm is None and r.state == "finished" for r in receiver.incoming.values()), (
        "no record keeps a VM alive once its migration is over"
    )
    assert all(vm.running for vm in m.destinations.values())

    replies = []
    m.sim.runtime("src").on_message(MigrationSwitched, lambda src, reply: replies.append(reply))

    async def ask_again(rt):  # a switch-over repeated (its first answer lost) is answered the same
        rt.send("dst", MigrationSwitch(ids[-1], ""))
        await rt.sleep(1.0)

    m.sim.run_until_complete("src", ask_again, timeout=10)
    assert [(r.migration, r.ok) for r in replies] == [(ids[-1], True)]


def test_several_vms_migrate_at_once_between_the_same_two_nodes():
    """Evacuating a host: each batch names its migration, so the destination files it under the
    right VM (it used to route batches by source node, and a second migration aborted the first)."""
    m = SimMigration(link(bandwidth=10e9))
    src = m.sim.runtime("src")
    vms = [ModelVM(src, 16 * MiB // 4096, mix=MIX, workload=UniformWorkload(500, 1024)) for _ in range(3)]
    tasks = [src.spawn(src.app.migrate(vm, "dst", MigrationSettings.dwcp())) for vm in vms]
    m.sim.run()
    reports = [task.result() for task in tasks]
    assert [r.outcome for r in reports] == ["completed"] * 3
    assert len({r.migration for r in reports}) == 3
    for report, vm in zip(reports, vms, strict=True):
        arrived = m.destinations[report.migration]
        assert np.array_equal(arrived.versions, vm.versions) and arrived.running and not vm.running


def test_a_restarted_sources_unfinished_migration_is_let_go_when_it_begins_another():
    m = SimMigration(link(bandwidth=100e6))
    src = m.sim.runtime("src")
    src.spawn(src.app.migrate(ModelVM(src, 64 * MiB // 4096, mix=RANDOM), "dst", MigrationSettings.dwcp()))
    m.sim.faults.crash("src", at=1.0, restart_after=0.5)
    m.sim.run(until=2.0)
    receiver = m.sim.runtime("dst").app
    (stale,) = receiver.incoming.values()
    assert stale.state == "receiving"  # the destination cannot tell a crash from a slow source

    report = m.run(MigrationSettings.dwcp(), memory=4 * MiB)
    assert report.ok and report.migration != stale.id  # ids carry the source's boot id
    assert stale.state == "aborted" and stale.vm is None  # its guest memory is let go


def test_an_abort_sent_while_the_link_is_down_reaches_the_destination_once_it_is_back():
    """Else the destination keeps filling (and holding) a VM nobody will switch to."""

    async def cut(rt):
        await rt.sleep(0.2)  # mid round 0
        m.sim.faults.partition(["src"], ["dst"], duration=125.0)  # the streams give up after 120 s

    m = SimMigration()
    with pytest.raises(MigrationError):
        m.run(MigrationSettings.dwcp(timeout=30.0), workload=UniformWorkload(1000, 1024), during=cut)
    (record,) = m.sim.runtime("dst").app.incoming.values()
    assert m.sim.now < 125.2 and record.state == "receiving"  # the abort is sent into the partition
    m.sim.run(until=200.0)
    assert record.state == "aborted" and record.vm is None


def test_on_a_busy_host_the_stop_rule_counts_the_wait_for_a_core_and_keeps_the_downtime_limit():
    """Four VMs leave a one-core host over the WAN: the final round's first batch waits behind the
    other migrations' encoding, and that wait is downtime (0.486 s before the rule counted it)."""
    from novacron.sim.migration import simulate_evacuation

    settings = MigrationSettings.dwcp()
    reports = simulate_evacuation(
        settings, vms=4, cores=1, link="wan", memory=1 << 30, mix=MIX, workload=UniformWorkload(2500, 65536)
    )
    assert all(r.ok and r.converged for r in reports)
    assert max(r.downtime for r in reports) <= settings.max_downtime


def _lose_first(rt, message_type, handler, *, skip: int = 0) -> list:
    """From now on ``rt`` loses the first ``message_type`` it receives after letting ``skip``
    through; returns what it lost."""
    lost = []
    seen = 0

    def receive(src, message):
        nonlocal seen
        seen += 1
        if seen == skip + 1:
            lost.append(message)
            return
        handler(src, message)

    rt.on_message(message_type, receive)
    return lost


@pytest.mark.parametrize("engine", ["precopy", "postcopy"])
@pytest.mark.parametrize("lose", ["switch", "reply"])
def test_one_lost_switch_over_message_costs_no_downtime(engine, lose):
    """The switch-over happens while the guest is paused: each message of it goes twice, so one
    loss does not wait for a retry (0.25 s, which alone is most of a 0.3 s downtime limit)."""

    def migrate(lossy: bool):
        m = SimMigration(link(rtt=0.05))
        lost = []
        if lossy and lose == "switch":
            dst = m.sim.runtime("dst")
            lost = _lose_first(dst, MigrationSwitch, dst.app._on_switch)
        elif lossy:
            src = m.sim.runtime("src")
            lost = _lose_first(src, MigrationSwitched, src.app._on_reply)
        report = m.run(MigrationSettings.dwcp(engine=engine, postcopy_after=0), memory=16 * MiB)
        return report, lost

    clean, _ = migrate(lossy=False)
    report, lost = migrate(lossy=True)
    assert report.ok and len(lost) == 1
    assert report.downtime == pytest.approx(clean.downtime, abs=1e-6)
    assert report.downtime < RETRY_INTERVAL


def test_a_lost_reply_to_the_round_trip_ping_does_not_inflate_the_measured_rtt():
    """The source times a second MigrationBegin for the RTT, which the stop rule counts 1.5 times
    in every downtime estimate: a lost reply once measured RTT + 0.25 s, and the 0.3 s limit
    then looked unreachable on a 100 ms link (the migration ran to its round limit)."""

    def migrate(lossy: bool):
        m = SimMigration(link(rtt=0.1, bandwidth=1e9))
        lost = []
        if lossy:
            src = m.sim.runtime("src")
            lost = _lose_first(src, MigrationReady, src.app._on_reply, skip=1)  # the ping's reply
        workload = UniformWorkload(2000, 2048)
        return m.run(MigrationSettings.dwcp(), memory=64 * MiB, workload=workload), lost

    clean, _ = migrate(lossy=False)
    report, lost = migrate(lossy=True)
    assert len(lost) == 1 and clean.converged
    assert report.converged and len(report.rounds) == len(clean.rounds)
    assert report.downtime == pytest.approx(clean.downtime, abs=1e-3)
