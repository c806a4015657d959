"""A migration is never allowed to leave two running copies of one VM.

Once the source has sent the switch-over, the destination may have resumed the guest, whatever
becomes of the answer: from then on the source keeps its guest paused and asks until it knows
(MigrationInDoubt), and only a definite "no" from the destination lets it run its guest again.
A destination whose source went quiet before the switch-over lets its half-built VM go, and then
refuses a switch-over that arrives late. Faults are struck at the worst moments, and a probe
checks every millisecond of simulated time that the two guests never run at once.
"""

from __future__ import annotations

import pytest
from migration_testkit import MiB, SimMigration

from novacron.migration import MigrationError, MigrationInDoubt, MigrationSettings, UniformWorkload
from novacron.migration.settings import SettingsError

WORKLOAD = UniformWorkload(2000, 2048)


class Probe:
    """Samples, every millisecond, whether the source's and the destination's guests both run."""

    def __init__(self, m: SimMigration) -> None:
        self.m, self.both, self.samples = m, [], 0

    async def watch(self, rt) -> None:
        while True:
            await rt.sleep(0.001)
            self.samples += 1
            running = [vm for vm in self.m.destinations.values() if vm.running]
            if running and self.m.source is not None and self.m.source.running:
                self.both.append(rt.now())


def run_with(m: SimMigration, settings: MigrationSettings, during):
    probe = Probe(m)

    async def both(rt):
        rt.spawn(probe.watch(rt))
        await during(rt)

    try:
        return m.run(settings, memory=32 * MiB, workload=WORKLOAD, during=both), probe
    except MigrationError as exc:
        return exc, probe


def partition_when_the_destination_switches(m: SimMigration, heal_after: float) -> None:
    """The destination resumes the guest, then the network fails before its answer gets out."""
    receiver = m.sim.runtime("dst").app
    switch = receiver._switch

    def switch_then_cut(incoming, message):
        answer = switch(incoming, message)
        m.sim.faults.partition(["src"], ["dst"], duration=heal_after)
        return answer

    receiver._switch = switch_then_cut


async def nothing(rt) -> None:
    pass


@pytest.mark.parametrize("engine", ["precopy", "postcopy"])
def test_an_unanswered_switch_over_keeps_the_source_paused_until_it_learns_the_destination_has_it(engine):
    m = SimMigration()
    partition_when_the_destination_switches(m, heal_after=30.0)
    settings = MigrationSettings.dwcp(engine=engine, timeout=5.0)
    error, probe = run_with(m, settings, nothing)
    assert isinstance(error, MigrationInDoubt)
    assert error.report.outcome.startswith("in doubt") and not error.resolution.done()
    assert not m.source.running and m.destination.running  # the destination resumed it
    m.sim.run(until=m.sim.now + 60.0)  # the partition heals; the source asks again
    assert error.resolution.result() == "destination"
    assert not m.source.running and m.destination.missing_count() == 0
    assert probe.samples > 10_000 and probe.both == []


def test_a_post_copy_push_cut_by_a_partition_goes_on_once_it_heals():
    m = SimMigration()

    async def cut_during_the_push(rt):
        while not any(vm.running for vm in m.destinations.values()):
            await rt.sleep(0.0005)
        m.sim.faults.partition(["src"], ["dst"], duration=150.0)  # longer than AMST's 120 s patience

    settings = MigrationSettings.dwcp(engine="postcopy", postcopy_after=0, timeout=5.0)
    error, probe = run_with(m, settings, cut_during_the_push)
    assert isinstance(error, MigrationInDoubt)
    assert m.destination.running and m.destination.missing_count() > 0 and not m.source.running
    m.sim.run(until=m.sim.now + 120.0)
    assert error.resolution.result() == "destination" and m.destination.missing_count() == 0
    assert probe.both == []


def test_a_switch_over_that_arrives_after_the_destination_gave_up_is_refused_and_the_source_runs_on():
    m = SimMigration(receive_timeout=10.0)
    receiver = m.sim.runtime("dst")
    on_switch = receiver.app._on_switch
    receiver.on_message(type_of_switch(), lambda src, msg: None)  # every switch-over is lost...
    settings = MigrationSettings.dwcp(timeout=5.0)
    error, probe = run_with(m, settings, nothing)
    assert isinstance(error, MigrationInDoubt) and not m.source.running
    m.sim.run(until=m.sim.now + 6.0)  # ... until the destination gives the migration up
    (record,) = receiver.app.incoming.values()
    assert record.state == "aborted" and record.vm is None
    receiver.on_message(type_of_switch(), on_switch)  # now they get through, and are refused
    m.sim.run(until=m.sim.now + 10.0)
    assert error.resolution.result() == "source"
    assert m.source.running and not m.destination.running and probe.both == []


def test_a_source_that_never_hears_back_leaves_its_guest_paused_for_an_operator():
    m = SimMigration()
    partition_when_the_destination_switches(m, heal_after=1000.0)
    error, probe = run_with(m, MigrationSettings.dwcp(timeout=5.0, resolve_timeout=30.0), nothing)
    m.sim.run(until=m.sim.now + 40.0)
    assert error.resolution.result() == "unresolved"
    assert not m.source.running and m.destination.running and probe.both == []


def test_the_destination_lets_a_half_built_vm_go_when_its_source_goes_quiet():
    m = SimMigration(receive_timeout=10.0)
    settled = []
    m.sim.runtime("dst").app.on_settled = lambda incoming, vm: settled.append((incoming.state, vm))

    async def crash_the_source(rt):
        await rt.sleep(0.05)  # mid round 0
        m.sim.crash("src")

    src = m.sim.runtime("src")
    src.spawn(crash_the_source(src))
    from novacron.migration import ModelVM

    src.spawn(src.app.migrate(ModelVM(src, 32 * MiB // 4096), "dst", MigrationSettings.dwcp()))
    m.sim.run(until=9.0)
    (record,) = m.sim.runtime("dst").app.incoming.values()
    assert record.state == "receiving" and settled == []
    m.sim.run(until=11.0)
    assert record.state == "aborted" and record.vm is None
    assert [state for state, _ in settled] == ["aborted"]


def test_a_slow_source_is_not_given_up_while_its_batches_keep_coming():
    from migration_testkit import link

    m = SimMigration(link(bandwidth=50e6), receive_timeout=1.0)  # one batch takes longer than that
    report = m.run(MigrationSettings.dwcp(), memory=32 * MiB, workload=WORKLOAD)
    assert report.ok and report.total_time > 2.5
    assert max(r.duration for r in report.rounds) > 1.0


def test_settings_refuse_a_resolve_timeout_that_is_not_positive():
    with pytest.raises(SettingsError, match="resolve_timeout"):
        MigrationSettings.dwcp(resolve_timeout=0)


def type_of_switch():
    from novacron.migration.messages import MigrationSwitch

    return MigrationSwitch


def test_batches_for_a_migration_the_destination_gave_up_are_refused_and_the_source_runs_on():
    """A partition outlasts the destination's patience mid round 0: when it heals, the source's
    next batch is refused with the reason, so it stops at once (before any switch-over) and its
    guest runs on; the destination holds nothing."""
    m = SimMigration(receive_timeout=5.0)

    async def cut(rt):
        await rt.sleep(0.02)  # mid round 0
        m.sim.faults.partition(["src"], ["dst"], duration=8.0)

    error, probe = run_with(m, MigrationSettings.dwcp(timeout=30.0), cut)
    assert isinstance(error, MigrationError) and not isinstance(error, MigrationInDoubt)
    assert "no migration 'src/1' in progress from this source (aborted)" in str(error)
    assert m.sim.now < 20.0  # it stopped at the first refused batch, not at a timeout
    assert m.source.running and not m.destination.running and probe.both == []
    (record,) = m.sim.runtime("dst").app.incoming.values()
    assert record.state == "aborted" and record.vm is None


def test_a_destination_that_restarted_after_the_switch_over_leaves_the_source_paused_not_resumed():
    """It may have run the guest before it crashed (its writes since would be lost with a resumed
    source copy, the world having seen them), or not: it cannot say, so an operator decides."""
    m = SimMigration()
    receiver = m.sim.runtime("dst").app
    switch = receiver._switch

    def switch_then_crash(incoming, message):
        answer = switch(incoming, message)
        m.sim.faults.crash("dst", restart_after=1.0)  # before its answer leaves
        return answer

    receiver._switch = switch_then_crash
    error, probe = run_with(m, MigrationSettings.dwcp(timeout=5.0), nothing)
    assert isinstance(error, MigrationInDoubt)
    m.sim.run(until=m.sim.now + 10.0)
    assert error.resolution.result() == "unresolved"  # at once: asking again would not tell more
    assert not m.source.running and probe.both == []


def test_a_destination_that_forgot_a_finished_migration_does_not_get_the_source_resumed(monkeypatch):
    """Its record went (FINISHED_MEMORY later migrations) while its answer was lost: "unknown
    migration" would once have been taken for "I never switched", and the source resumed beside
    the guest the destination runs."""
    from novacron.migration import service

    monkeypatch.setattr(service, "FINISHED_MEMORY", 0)  # forgotten as soon as it is finished
    m = SimMigration()
    partition_when_the_destination_switches(m, heal_after=20.0)
    error, probe = run_with(m, MigrationSettings.dwcp(timeout=5.0), nothing)
    m.sim.run(until=m.sim.now + 40.0)
    assert error.resolution.result() == "unresolved"
    assert m.destination.running and not m.source.running and probe.both == []
