"""The deterministic simulation campaigns: Raft and PBFT pass hundreds of seeded fault
schedules with zero violations, a deliberately broken Raft is caught, and a failing seed
replays exactly."""

import pandas as pd
import pytest

from novacron.sim.dst import CampaignConfig, campaign, run_campaign, run_seed

# CI runs 200 Raft and 100 PBFT seeds, in blocks so that each test stays far from the per-test
# timeout on a slow or busy machine (and a failure names its block), two seeds at a time (CI has
# two cores; the table does not depend on it, see below).
RAFT_BLOCKS = [range(start, start + 20) for start in range(0, 200, 20)]
PBFT_BLOCKS = [range(start, start + 10) for start in range(0, 100, 10)]


def block_id(seeds: range) -> str:
    return f"seeds{seeds.start}-{seeds.stop - 1}"


def assert_no_failures(failures):
    report = "\n".join(f"seed {f.seed}: {'; '.join(map(str, f.violations))}\n  {f.replay}" for f in failures)
    assert not failures, report


@pytest.mark.slow
@pytest.mark.parametrize("seeds", RAFT_BLOCKS, ids=block_id)
def test_raft_passes_the_campaign_with_zero_violations(seeds):
    table, failures = run_campaign(CampaignConfig(protocol="raft"), seeds, workers=2)
    assert_no_failures(failures)
    assert len(table) == len(seeds)
    assert table["completed"].min() > 100  # every seed did real work, not just survived
    assert table["leaders"].max() >= 2  # and the faults did force leader changes


@pytest.mark.slow
@pytest.mark.parametrize("seeds", PBFT_BLOCKS, ids=block_id)
def test_pbft_passes_the_campaign_with_zero_violations_including_byzantine_replicas(seeds):
    table, failures = run_campaign(CampaignConfig(protocol="pbft"), seeds, workers=2)
    assert_no_failures(failures)
    assert (table["byzantine"] != "").sum() >= 2  # several seeds had a traitor
    assert table["completed"].min() > 50


def test_the_campaign_catches_a_raft_without_the_election_restriction():
    config = CampaignConfig(protocol="raft", broken="vote-any-log")
    _, failures = run_campaign(config, range(0, 30))
    assert failures, "30 seeds of partitions and leader crashes should expose a stale leader"
    kinds = {v.check for f in failures for v in f.violations}
    assert kinds & {"state machine safety", "linearizability"}
    assert "--broken vote-any-log" in failures[0].replay


def test_a_failing_seed_replays_exactly():
    config = CampaignConfig(protocol="raft", broken="vote-any-log")
    first = run_seed(config, 0)
    again = run_seed(config, 0)
    assert not first.ok
    assert again.row() == first.row()
    assert [str(v) for v in again.violations] == [str(v) for v in first.violations]
    assert again.faults == first.faults


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not():
    config = CampaignConfig(protocol="raft", duration=5.0, recovery=3.0)
    a, b, c = run_seed(config, 7), run_seed(config, 7), run_seed(config, 8)
    assert a.row() == b.row() and a.faults == b.faults
    assert (c.row(), c.faults) != (a.row(), a.faults)


def test_a_run_without_faults_completes_every_operation():
    result = run_seed(CampaignConfig(protocol="raft", faults=()), 3)
    assert result.ok and result.unknown == 0 and result.completed == result.operations


@pytest.mark.parametrize("seed", [6, 48, 275])
def test_pbft_seeds_that_once_failed_now_pass(seed):
    # 6 and 275: replicas stuck in view changes for different views with one replica silent
    # (liveness); 48: amnesia after crash/restart broke safety.
    result = run_seed(CampaignConfig(protocol="pbft"), seed)
    assert result.ok, [str(v) for v in result.violations]


def test_seeds_run_side_by_side_give_the_same_table_and_failures():
    config = CampaignConfig(protocol="raft", broken="vote-any-log")
    serial, serial_failures = run_campaign(config, range(0, 8), workers=1)
    parallel, parallel_failures = run_campaign(config, range(0, 8), workers=2)
    pd.testing.assert_frame_equal(parallel, serial, check_exact=True)
    assert serial_failures, "the broken Raft should fail some of these seeds"
    assert [(f.seed, [str(v) for v in f.violations], f.faults) for f in parallel_failures] == [
        (f.seed, [str(v) for v in f.violations], f.faults) for f in serial_failures
    ]


def test_a_seed_whose_run_raises_is_a_failure_and_the_others_still_run(monkeypatch):
    real = campaign.run_seed

    def crashes_on_two(config, seed):
        if seed == 2:
            raise KeyError("no such replica")
        return real(config, seed)

    monkeypatch.setattr(campaign, "run_seed", crashes_on_two)
    config = CampaignConfig(protocol="raft")
    table, failures = run_campaign(config, range(0, 4), workers=1)
    assert table["seed"].tolist() == [0, 1, 2, 3]
    assert table["ok"].tolist() == [True, True, False, True]
    (failure,) = failures
    assert failure.seed == 2 and failure.replay == config.replay_command(2)
    assert [str(v) for v in failure.violations] == ["exception: KeyError: 'no such replica'"]


ASS_BLOCKS = [range(start, start + 50) for start in range(0, 100, 50)]


@pytest.mark.parametrize("seeds", ASS_BLOCKS, ids=block_id)
def test_ass_replicas_converge_and_lose_no_acknowledged_write_in_the_campaign(seeds):
    table, failures = run_campaign(CampaignConfig(protocol="ass"), seeds, workers=2)
    assert_no_failures(failures)
    assert table["acknowledged"].min() > 1000  # every seed wrote a lot, through the faults
    assert table["most_siblings"].max() >= 2  # and concurrent writes met


def test_the_campaign_catches_an_ass_that_acknowledges_writes_before_they_are_durable(monkeypatch):
    from novacron.sync import StateSync

    async def not_synced(self):
        return None

    monkeypatch.setattr(StateSync, "_durable", not_synced)  # in this process: workers=1
    config = CampaignConfig(protocol="ass")
    _, failures = run_campaign(config, range(0, 30), workers=1)
    assert failures, "crashes should lose writes acknowledged before their fsync"
    found = {v.check for f in failures for v in f.violations}
    assert "no lost write" in found and found <= {"no lost write", "no resurrection"}
    assert failures[0].replay.startswith("novacron dst --protocol ass --seeds")


def test_an_ass_seed_replays_exactly():
    config = CampaignConfig(protocol="ass")
    assert run_seed(config, 7).row() == run_seed(config, 7).row()


VM_BLOCKS = [range(start, start + 50) for start in range(0, 100, 50)]


@pytest.mark.parametrize("seeds", VM_BLOCKS, ids=block_id)
def test_vms_never_run_twice_and_none_is_lost_in_the_migration_campaign(seeds):
    table, failures = run_campaign(CampaignConfig(protocol="vm"), seeds, workers=2)
    assert_no_failures(failures)
    assert table["migrations"].sum() > 2 * len(seeds)  # VMs did move, through the faults
    assert table["in_doubt"].sum() >= len(seeds) // 3  # and switch-overs did go unanswered


def test_the_campaign_catches_a_source_that_resumes_after_an_unanswered_switch_over(monkeypatch):
    """The bug NovaCron's migration had until the VM hosting work: a switch-over whose answer was
    lost failed the migration, and the source resumed a guest the destination was running."""
    from novacron.migration.service import MigrationError
    from novacron.migration.source import SourceRun

    def resume_anyway(self, exc):
        self._abort(str(exc))
        return MigrationError(str(exc), self._report(f"failed: {exc}"))

    monkeypatch.setattr(SourceRun, "_in_doubt", resume_anyway)  # in this process: workers=1
    _, failures = run_campaign(CampaignConfig(protocol="vm"), range(0, 10), workers=1)
    assert failures, "switch-overs cut by partitions should leave a VM running twice"
    assert "one running copy" in {v.check for f in failures for v in f.violations}
    assert failures[0].replay.startswith("novacron dst --protocol vm --seeds")


def test_a_vm_seed_replays_exactly():
    config = CampaignConfig(protocol="vm")
    first = run_seed(config, 3)
    assert first.row() == run_seed(config, 3).row() and first.faults == run_seed(config, 3).faults
