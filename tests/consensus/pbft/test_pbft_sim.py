"""PBFT in the simulator (virtual time, fixed seeds): agreement, view changes, Byzantine replicas,
state transfer, both authentication modes, n = 4 (f = 1) and n = 7 (f = 2)."""

from dataclasses import replace

import pytest
from pbft_cluster import SETTINGS, Cluster

from novacron.consensus.kv import decode_result
from novacron.consensus.pbft import Byzantine

MAC = replace(SETTINGS, auth="mac")


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("settings", [SETTINGS, MAC], ids=["ed25519", "mac"])
def test_all_replicas_execute_the_same_requests_in_the_same_order(n, settings):
    c = Cluster(n, settings=settings)
    results = c.put_many(10)
    c.put_concurrently(60, "batch")
    c.settle(1)
    assert [decode_result(r).value for r in results] == [None] * 10  # first puts: no previous value
    assert c.check_agreement() == 70
    c.snapshots_equal()
    replica = c.replica("n1")
    assert replica.last_executed < 70  # requests were batched
    assert replica.stable_checkpoint > 0 and all(s > replica.stable_checkpoint for s in replica.core.slots)


def test_the_same_seed_replays_the_same_run():
    hashes = []
    for _ in range(2):
        c = Cluster(4, seed=5, byzantine={"n2": Byzantine("replay")})
        c.put_concurrently(20)
        hashes.append(c.sim.trace_hash())
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("n", [4, 7])
def test_a_crashed_primary_is_replaced_by_a_view_change(n):
    c = Cluster(n)
    c.put_many(5)
    c.sim.crash("n0")
    c.put_many(10, start=5)
    c.settle(1)
    alive = c.members[1:]
    assert c.check_agreement(alive) == 15
    assert ("n1", 1) in c.recorder.leaders and all(c.replica(m).view == 1 for m in alive)


def test_a_partitioned_primary_rejoins_after_the_heal_and_catches_up():
    c = Cluster(4)
    c.put_many(5)
    cut = c.sim.faults.isolate("n0")
    c.put_many(20, start=5)
    cut.heal()
    c.put_many(5, start=25)
    c.settle(3)
    assert c.check_agreement() == 30
    c.snapshots_equal()
    assert c.replica("n0").view == 1 and not c.replica("n0").core.is_primary


def test_a_replica_behind_the_garbage_collected_log_catches_up_by_state_transfer():
    c = Cluster(4)
    cut = c.sim.faults.isolate("n3")
    c.put_many(40)
    assert c.replica("n0").stable_checkpoint >= 32  # the others cut their logs long ago
    cut.heal()
    c.put_many(5, start=40)
    c.settle(2)
    assert [node for node, _ in c.recorder.restored] == ["n3"]
    assert c.check_agreement() == 45
    c.snapshots_equal()


def test_a_restarted_replica_resumes_from_its_stored_checkpoint():
    c = Cluster(4)
    c.put_many(10)
    c.sim.crash("n2")
    c.put_many(10, start=10)
    c.sim.restart("n2")
    assert c.replica("n2").last_executed >= 8  # the synced stable checkpoint, not zero
    c.put_many(10, start=20)
    c.settle(2)
    assert c.check_agreement() == 30
    c.snapshots_equal()


def test_a_restarted_primary_hands_over_instead_of_reusing_sequence_numbers():
    c = Cluster(4)
    c.put_many(10)
    c.sim.restart("n0")  # crash and come back at once: no one noticed
    c.put_many(10, start=10)
    c.settle(2)
    assert c.check_agreement() == 20
    c.snapshots_equal()
    assert all(c.replica(m).view >= 1 for m in c.members)


KINDS = ["silent", "tamper", "equivocate", "replay"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("culprit", ["n0", "n2"], ids=["primary", "backup"])
def test_one_byzantine_replica_of_each_kind_cannot_stop_or_split_four(kind, culprit):
    c = Cluster(4, byzantine={culprit: Byzantine(kind)})
    c.put_many(10)
    c.put_concurrently(30, "batch")
    c.settle(2)
    assert c.check_agreement() == 40
    c.snapshots_equal()
    if kind in ("silent", "tamper", "equivocate") and culprit == "n0":
        assert all(c.replica(m).view >= 1 for m in c.correct)  # the faulty primary was voted out


def test_two_byzantine_replicas_among_seven_with_mac_authenticators():
    byzantine = {"n0": Byzantine("equivocate"), "n3": Byzantine("tamper", resign=True)}
    c = Cluster(7, settings=MAC, byzantine=byzantine)
    c.put_many(10)
    c.put_concurrently(30, "batch")
    c.settle(2)
    assert c.check_agreement() == 40
    c.snapshots_equal()
    culprits = {culprit for node, culprit, _ in c.recorder.misbehaviour if node in c.correct}
    assert culprits == {"n0", "n3"}


def test_two_silent_primaries_in_a_row_are_skipped_with_growing_timeouts():
    c = Cluster(7, byzantine={"n0": "silent", "n1": "silent"})  # a kind's name is enough
    c.put_many(5)
    c.settle(1)
    assert c.check_agreement() == 5
    assert all(c.replica(m).view == 2 for m in c.correct)


def test_an_equivocating_primary_is_reported_by_correct_replicas_with_signed_evidence():
    c = Cluster(4, byzantine={"n0": Byzantine("equivocate")})
    c.put_many(5)
    reports = [(node, what) for node, culprit, what in c.recorder.misbehaviour if node in c.correct]
    assert reports and "two pre-prepares for view 0" in reports[0][1]  # later, as a backup, it lies on
    assert {culprit for node, culprit, _ in c.recorder.misbehaviour if node in c.correct} == {"n0"}
    evidence = c.replica(reports[0][0]).core.evidence[0]
    auth = c.replica("n1").core.auth
    assert len(evidence.messages) == 2 and all(auth.valid("n0", m.body, m.sig) for m in evidence.messages)


def test_tampered_messages_are_rejected_and_counted():
    c = Cluster(4, byzantine={"n2": Byzantine("tamper")})
    c.put_many(5)
    rejected = c.replica("n1").rejected
    assert rejected.get("Prepare: bad signature claimed by n2", 0) >= 5
    assert not c.recorder.misbehaviour  # a broken signature proves nothing against n2


def test_correct_replicas_never_blame_each_other():
    c = Cluster(7, byzantine={"n1": Byzantine("equivocate")})
    c.sim.crash("n0")  # f = 2 faults: view change to the equivocating n1, then on to n2
    c.put_many(10)
    c.settle(1)
    assert {culprit for _, culprit, _ in c.recorder.misbehaviour} <= {"n1"}
    assert c.check_agreement(c.members[2:]) == 10
