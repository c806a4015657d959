"""PBFT under crash and restart with loss of unsynced writes (the DST campaign's pbft seed 48).

A replica that crashes forgets whatever it had not synced. If it forgot the prepared
certificates it had (and the COMMITs it sent for them), then two of the 2f + 1 replicas that
committed a request restarting are enough for a later view change to miss the request and give
its sequence number to another one: correct replicas then execute different commands at the same
execution index, with no Byzantine replica around.
"""

from pbft_cluster import Cluster

SLOT_PREFIX = "pbft/slot/"  # novacron.consensus.pbft.node.SLOT_PREFIX


def _commit_while_n3_is_cut_off(c: Cluster) -> None:
    c.put_many(5)  # seqs 1..5 everywhere; checkpoint 4 stable (K = 4) and stored
    cut = c.sim.faults.isolate("n3")
    c.put_many(2, start=5)  # seqs 6 and 7 commit at n0, n1, n2 only
    assert c.replica("n1").last_executed == 7 and c.replica("n3").last_executed == 5
    assert c.replica("n1").stable_checkpoint == 4
    cut.heal()


def test_two_restarted_backups_keep_what_they_prepared_so_a_view_change_keeps_it():
    c = Cluster(4)
    _commit_while_n3_is_cut_off(c)
    c.sim.restart("n1")  # crash and restart: everything unsynced is lost
    c.sim.restart("n2")
    c.sim.crash("n0")  # the primary (the one fault): view 1 is decided by n1, n2 (restarted) and n3
    c.put_many(4, start=7)
    c.settle(1)
    alive = ["n1", "n2", "n3"]
    assert all(c.replica(m).view >= 1 for m in alive)
    # the observer remembers what n1 and n2 applied before the crash: same commands, same indexes
    assert c.check_agreement(c.members) == 11
    c.snapshots_equal(alive)
    for index in (6, 7):
        command = c.recorder.applied["n1"][index][0]
        assert command.op == c.recorder.applied["n0"][index][0].op


def test_restarted_replicas_reload_their_certificates_into_their_view_change():
    c = Cluster(4)
    _commit_while_n3_is_cut_off(c)
    c.sim.restart("n2")
    core = c.replica("n2").core
    assert core.last_executed == 4  # it re-executes from its stored checkpoint...
    assert sorted(core.prepared_certs) == [5, 6, 7]  # ...but forgot nothing it prepared
    assert all(core.slots[s].prepared for s in (5, 6, 7))
    c.sim.crash("n0")
    c.put_many(1, start=7)
    assert c.replica("n2").view == 1 and c.check_agreement(c.members) == 8


def test_a_restarted_primary_hands_over_and_the_stored_log_stays_bounded():
    c = Cluster(4)
    c.put_many(5)
    c.put_concurrently(12, "burst")
    c.sim.restart("n0")  # it reloads the pre-prepares it sent, then hands over to view 1
    assert c.replica("n0").core.in_view_change and c.replica("n0").view == 1
    c.put_many(5, start=5)
    c.settle(1)
    assert c.check_agreement(c.members) == 22
    c.snapshots_equal()
    # records below the stored stable checkpoint are dropped with it (one sync): the log stays bounded
    storage = c.sim.storage("n1")
    stored = sorted(int(k[len(SLOT_PREFIX) :]) for k in storage.keys(SLOT_PREFIX))
    stable = c.replica("n1").stable_checkpoint
    assert stable >= 8 and stored and all(stable < s <= stable + c.settings.watermark_window for s in stored)


def test_a_new_primary_restarted_during_its_view_change_still_completes_it():
    """Seed 107: n1, the primary of view 1, restarts before it gathered 2f + 1 VIEW-CHANGEs. It must
    resume the change to view 1 (the others wait for its NEW-VIEW), not hand over to view 2 alone."""
    c = Cluster(4, byzantine={"n3": "silent"})
    c.put_many(3)
    cut = c.sim.faults.isolate("n0")
    client = c.sim.runtime("c0")
    done = client.spawn(client.app.put("late", b"1"))
    c.settle(2)
    assert [(c.replica(m).view, c.replica(m).in_view_change) for m in ("n1", "n2")] == [(1, True)] * 2
    c.sim.restart("n1")
    assert (c.replica("n1").view, c.replica("n1").in_view_change) == (1, True)
    cut.heal()
    c.settle(3)
    assert done.done() and all(c.replica(m).view == 1 for m in c.correct)
    assert c.check_agreement() == 4
