"""The pure core, fed by hand: quorums, watermarks, checkpoints, the O set, authentication, evidence.

A tiny synchronous "network" (:func:`pump`) moves the cores' outboxes between them,
so each test can drop exactly the messages it wants to.
"""

import msgspec
import pytest

from novacron.consensus.api import ClientRequest
from novacron.consensus.pbft import Keyring, PBFTCore, PBFTMessage, PBFTSettings, Quorum, Signed
from novacron.consensus.pbft.core import InstallState, Misbehaviour
from novacron.consensus.pbft.messages import (
    NULL_DIGEST,
    Checkpoint,
    CheckpointState,
    Commit,
    NewView,
    Prepare,
    PrePrepare,
    StateReply,
    ViewChange,
    decode_payload,
    digest,
    encode,
    encode_batch,
    encode_state,
)
from novacron.consensus.pbft.viewchange import CheckedViewChange, compute_new_view

MEMBERS = ["n0", "n1", "n2", "n3"]


def make(auth="ed25519", n=4, **overrides):
    members = [f"n{i}" for i in range(n)]
    keyring = Keyring.generate(members, seed=7)
    settings = PBFTSettings(**{"auth": auth, "checkpoint_interval": 2, "watermark_window": 4, **overrides})
    return {m: PBFTCore(m, members, settings, keyring) for m in members}


def kind(message):
    return type(decode_payload(message.body)).__name__ if isinstance(message, PBFTMessage) else "Request"


def pump(cores, drop=lambda src, dst, message: False, executed=None):
    """Deliver every outbox until quiet; execute committed batches (state = b"s<seq>")."""
    executed = executed if executed is not None else {m: [] for m in cores}
    busy = True
    while busy:
        busy = False
        for src, core in cores.items():
            while (ex := core.take_executable()) is not None:
                executed[src].append((ex.seq, ex.batch))
                if ex.checkpoint:
                    core.checkpoint_reached(ex.seq, encode_state(CheckpointState(ex.seq, b"s%d" % ex.seq)))
                busy = True
            outbox, core.outbox = core.outbox, []
            for dst, message in outbox:
                for target in [dst] if dst is not None else [m for m in cores if m != src]:
                    busy = True
                    if drop(src, target, message):
                        continue
                    if isinstance(message, ClientRequest):
                        cores[target].request(message, from_client=False)
                    else:
                        cores[target].receive(src, message)
    return executed


def req(i, client="c0"):
    return ClientRequest(client, i, b"op%d" % i)


# -- quorums ---------------------------------------------------------------------------------------


def test_quorum_sizes_follow_n_equals_3f_plus_1():
    q4, q7 = Quorum(tuple(MEMBERS)), Quorum(tuple(f"n{i}" for i in range(7)))
    assert (q4.f, q4.strong, q4.weak) == (1, 3, 2)
    assert (q7.f, q7.strong, q7.weak) == (2, 5, 3)
    assert q4.primary(0) == "n0" and q4.primary(5) == "n1"


@pytest.mark.parametrize("n", [1, 3, 5, 6])
def test_other_sizes_are_refused_naming_the_rule(n):
    with pytest.raises(ValueError, match=r"n = 3f \+ 1"):
        Quorum(tuple(f"n{i}" for i in range(n)))


def test_settings_check_the_window_against_the_checkpoint_interval():
    with pytest.raises(ValueError, match="watermark_window"):
        PBFTSettings(checkpoint_interval=10, watermark_window=15)
    assert PBFTSettings.for_mode("internet").view_change_timeout == 10.0
    with pytest.raises(ValueError, match="unknown mode"):
        PBFTSettings.for_mode("moon")


# -- normal case -------------------------------------------------------------------------------------


def test_a_request_is_prepared_committed_and_executed_in_order_everywhere():
    cores = make()
    for i in (1, 2, 3):
        cores["n0"].request(req(i), from_client=True)
    executed = pump(cores)
    assert all(len(batches) >= 1 for batches in executed.values())
    orders = {m: [r.seq for _, b in executed[m] for r in b.requests] for m in cores}
    assert all(order == [1, 2, 3] for order in orders.values())


def test_prepared_needs_2f_matching_prepares_and_commit_needs_2f_plus_1():
    cores = make()
    cores["n0"].request(req(1), from_client=True)
    # n1 hears only its own prepare (all other prepares to n1 are lost): not prepared.
    pump(cores, drop=lambda s, d, m: d == "n1" and kind(m) == "Prepare")
    assert not cores["n1"].slots[1].prepared and cores["n1"].last_executed == 0
    assert cores["n2"].slots[1].committed and cores["n2"].last_executed == 1

    cores = make()
    cores["n0"].request(req(1), from_client=True)
    # commits reach n1 from one other replica only: 2 of 2f + 1 = 3, not committed.
    pump(cores, drop=lambda s, d, m: d == "n1" and kind(m) == "Commit" and s != "n2")
    assert cores["n1"].slots[1].prepared and not cores["n1"].slots[1].committed


def test_the_primary_batches_requests_while_batches_are_in_flight():
    cores = make(max_inflight_batches=1, checkpoint_interval=4, watermark_window=8)
    for i in range(1, 11):
        cores["n0"].request(req(i), from_client=True)
    executed = pump(cores)
    assert [len(b.requests) for _, b in executed["n1"]] == [1, 9]  # the first alone, the rest batched


def test_the_primary_stops_at_the_high_watermark_until_a_checkpoint_is_stable():
    cores = make(max_inflight_batches=100)  # K = 2, L = 4
    no_checkpoints = lambda s, d, m: kind(m) == "Checkpoint"  # noqa: E731
    for i in range(1, 7):
        cores["n0"].request(req(i), from_client=True)
        pump(cores, drop=no_checkpoints)
    assert cores["n0"].next_seq == 5 and cores["n1"].last_executed == 4  # seq 5 is above high = 0 + 4
    cores["n0"].request(req(7), from_client=True)
    pump(cores)  # checkpoints get through from now on (the next ones, at 6 and beyond)
    assert cores["n1"].last_executed == 4  # still: the checkpoints at 2 and 4 were lost


def test_backups_ignore_pre_prepares_outside_the_watermarks():
    cores = make()
    primary = cores["n0"]
    extra = encode_batch([req(1)])
    for seq in (0, 5):  # low = 0, high = 4
        body = encode(PrePrepare(0, seq, digest(extra)))
        cores["n1"].receive("n0", PBFTMessage("n0", body, primary.auth.sign(body), extra))
    assert cores["n1"].slots == {} and cores["n1"].outbox == []


# -- checkpoints --------------------------------------------------------------------------------------


def test_a_checkpoint_becomes_stable_with_2f_plus_1_matching_messages_and_the_log_is_cut():
    cores = make()
    for i in (1, 2, 3):
        cores["n0"].request(req(i), from_client=True)
        pump(cores, drop=lambda s, d, m: kind(m) == "Checkpoint" and s in ("n2", "n3"))
    # only n0 and n1 checkpointed publicly: 2 < 3 votes, nothing stable, the log is intact
    assert cores["n1"].checkpoints.stable_seq == 0 and 1 in cores["n1"].slots
    cores["n0"].request(req(4), from_client=True)
    pump(cores)
    for core in cores.values():
        assert core.checkpoints.stable_seq >= 2
        assert all(s > core.checkpoints.stable_seq for s in core.slots)
        assert all(s > core.checkpoints.stable_seq for s in core.prepared_certs)
        assert len(core.checkpoints.stable_proof) == 3


def test_state_transfer_installs_only_a_state_with_a_valid_proof():
    cores = make()
    for i in range(1, 5):
        cores["n0"].request(req(i), from_client=True)
    pump(cores, drop=lambda s, d, m: d == "n3")  # n3 hears nothing
    donor, lagger = cores["n0"], cores["n3"]
    cp = donor.checkpoints
    state = cp.stable_state()
    assert cp.stable_seq >= 2 and state is not None
    forged = StateReply(cp.stable_seq, digest(b"evil"), cp.stable_proof, b"evil")
    lagger.receive("n0", PBFTMessage("n0", encode(forged), donor.auth.sign(encode(forged))))
    assert lagger.events == [] and any("state transfer" in r for r in lagger.rejected)
    good = StateReply(cp.stable_seq, cp.stable_digest, cp.stable_proof, state)
    lagger.receive("n0", PBFTMessage("n0", encode(good), donor.auth.sign(encode(good))))
    assert lagger.events == [InstallState(cp.stable_seq, state)]
    assert lagger.last_executed == lagger.checkpoints.stable_seq == cp.stable_seq


# -- view change ----------------------------------------------------------------------------------------


def _vc(sender, stable, prepared):
    message = ViewChange(1, stable, b"", (), ())
    return CheckedViewChange(Signed(sender, b""), message, prepared)


def test_the_o_set_takes_the_highest_view_certificate_and_fills_gaps_with_null_requests():
    a, b = digest(b"a"), digest(b"b")
    checked = [
        _vc("n1", 2, {3: (0, a, b"A"), 6: (0, a, b"A6")}),
        _vc("n2", 4, {6: (2, b, b"B6")}),  # a later view prepared something else at 6
        _vc("n3", 0, {}),
    ]
    plan = compute_new_view(3, checked)
    assert plan.min_s == 4  # the highest stable checkpoint; 3 is below it and dropped
    assert plan.entries == ((5, NULL_DIGEST, encode_batch([])), (6, b, b"B6"))


def test_a_view_change_carries_prepared_certificates_into_the_new_view():
    cores = make()
    cores["n0"].request(req(1), from_client=True)
    pump(cores, drop=lambda s, d, m: kind(m) == "Commit")  # prepared everywhere, committed nowhere
    for name in ("n1", "n2", "n3"):
        cores[name].start_view_change(1)
    executed = pump(cores, drop=lambda s, d, m: s == "n0" or d == "n0")  # the old primary is gone
    assert cores["n1"].is_primary and cores["n2"].view == 1 and not cores["n2"].in_view_change
    assert [r.seq for _, b in executed["n2"] for r in b.requests] == [1]  # the request survived


def test_backups_recompute_the_o_set_and_reject_a_new_view_that_drops_a_request():
    cores = make()
    cores["n0"].request(req(1), from_client=True)
    pump(cores, drop=lambda s, d, m: kind(m) == "Commit")  # request 1 prepared everywhere
    for name in ("n1", "n2", "n3"):
        cores[name].start_view_change(1)
    vcs = tuple(cores[name].own_view_change.signed() for name in ("n1", "n2", "n3"))
    new_primary, backup = cores["n1"], cores["n2"]
    body = encode(NewView(1, vcs, ()))  # validly signed, but "nothing prepared": drops request 1
    backup.receive("n1", PBFTMessage("n1", body, new_primary.auth.sign(body)))
    assert backup.in_view_change
    assert backup.rejected == {"new-view: its O set does not match the view-changes": 1}


def test_view_change_timeouts_double_and_are_capped():
    cores = make(view_change_timeout=1.0, max_view_change_timeout=3.0)
    core = cores["n0"]  # not the primary of views 1-3, whose primaries stay silent
    core.start_view_change(1)
    durations = []
    for view in (1, 2, 3):
        for other in sorted(set(MEMBERS) - {"n0", f"n{view}"}):
            cores[other].start_view_change(view)
            core.receive(other, cores[other].own_view_change)  # 2f + 1 moved: the timer runs
        epoch, duration = core.timer
        durations.append(duration)
        core.on_timer(epoch)  # no NEW-VIEW came: on to the next view
    assert durations == [1.0, 2.0, 3.0] and core.view == 4


# -- authentication -----------------------------------------------------------------------------------------


def _prepare_from(core, seq=1, dig=b"d" * 32):
    body = encode(Prepare(0, seq, dig))
    return PBFTMessage(core.me, body, core.auth.sign(body))


def test_a_tampered_message_is_rejected_and_counted():
    cores = make()
    good = _prepare_from(cores["n2"])
    tampered = msgspec.structs.replace(good, body=encode(Prepare(0, 1, b"e" * 32)))
    cores["n1"].receive("n2", tampered)
    assert cores["n1"].rejected == {"Prepare: bad signature claimed by n2": 1}
    cores["n1"].receive("n2", good)
    assert "n2" in cores["n1"].slots[1].prepares


def test_a_forged_sender_is_rejected():
    cores = make()
    forged = msgspec.structs.replace(_prepare_from(cores["n3"]), sender="n2")  # n3 signs, claims n2
    cores["n1"].receive("n3", forged)
    assert cores["n1"].rejected == {"Prepare: bad signature claimed by n2": 1}
    outsider = msgspec.structs.replace(_prepare_from(cores["n3"]), sender="mallory")
    cores["n1"].receive("n3", outsider)
    assert cores["n1"].rejected["sender 'mallory' is not another member"] == 1


def test_mac_mode_checks_the_receivers_entry_of_the_authenticator():
    cores = make(auth="mac")
    body = encode(Commit(0, 1, b"d" * 32))
    macs = cores["n2"].auth.authenticator(body)
    assert len(macs) == 4 and macs[2] == b""  # one per member, none for itself
    cores["n1"].receive("n2", PBFTMessage("n2", body, macs=macs))
    assert cores["n1"].rejected == {} and "n2" in cores["n1"].slots[1].commits
    bad = list(macs)
    bad[1] = bytes(16)  # n1's entry corrupted: n1 rejects; n3's entry still checks out
    cores["n1"].receive("n2", PBFTMessage("n2", body, macs=tuple(bad)))
    cores["n3"].receive("n2", PBFTMessage("n2", body, macs=tuple(bad)))
    assert cores["n1"].rejected == {"Commit: bad MAC claimed by n2": 1} and cores["n3"].rejected == {}
    # n3 cannot MAC in n2's name: it lacks the n1-n2 key
    forged = PBFTMessage("n2", body, macs=cores["n3"].auth.authenticator(body))
    cores["n1"].receive("n3", forged)
    assert cores["n1"].rejected["Commit: bad MAC claimed by n2"] == 2
    # provable kinds are signed even in MAC mode: a MAC-only prepare is refused
    prepare = encode(Prepare(0, 1, b"d" * 32))
    cores["n1"].receive("n2", PBFTMessage("n2", prepare, macs=cores["n2"].auth.authenticator(prepare)))
    assert any(r.startswith("Prepare: signature") for r in cores["n1"].rejected)


def test_keyrings_are_deterministic_and_round_trip_through_files(tmp_path):
    a, b = Keyring.generate(MEMBERS, seed=3), Keyring.generate(MEMBERS, seed=3)
    assert a.public_bytes("n1") == b.public_bytes("n1") and a.mac_key("n1", "n2") == b.mac_key("n2", "n1")
    assert a.public_bytes("n1") != Keyring.generate(MEMBERS, seed=4).public_bytes("n1")
    a.save(tmp_path, "n1")
    loaded = Keyring.load(tmp_path)
    assert loaded.public_bytes("n3") == a.public_bytes("n3") and loaded.mac_key("n1", "n3") == a.mac_key(
        "n1", "n3"
    )
    with pytest.raises(Exception, match="no private key"):
        loaded.private_key("n2")


# -- equivocation --------------------------------------------------------------------------------------------


def test_two_pre_prepares_for_one_sequence_number_are_reported_with_evidence():
    cores = make()
    primary, backup = cores["n0"], cores["n1"]
    messages = []
    for batch in ([req(1)], [req(2)]):
        extra = encode_batch(batch)
        body = encode(PrePrepare(0, 1, digest(extra)))
        messages.append(PBFTMessage("n0", body, primary.auth.sign(body), extra))
        backup.receive("n0", messages[-1])
    assert backup.events == [Misbehaviour("n0", "equivocation: two pre-prepares for view 0 seq 1")]
    evidence = backup.evidence[0]
    assert [m.body for m in evidence.messages] == [m.body for m in messages]
    assert all(backup.auth.valid("n0", m.body, m.sig) for m in evidence.messages)  # checkable by anyone


def test_a_prepare_for_a_digest_the_primary_never_signed_blames_its_sender():
    cores = make()
    cores["n0"].request(req(1), from_client=True)
    pump(cores, drop=lambda s, d, m: kind(m) != "PrePrepare")
    liar = _prepare_from(cores["n2"], dig=b"x" * 32)
    cores["n1"].receive("n2", liar)
    assert (
        Misbehaviour("n2", "prepare for a digest the primary never proposed (view 0 seq 1)")
        in cores["n1"].events
    )


def test_two_conflicting_checkpoints_from_one_replica_are_reported():
    cores = make()
    for dig in (b"a" * 32, b"b" * 32):
        body = encode(Checkpoint(2, dig))
        cores["n1"].receive("n2", PBFTMessage("n2", body, cores["n2"].auth.sign(body)))
    assert cores["n1"].events == [Misbehaviour("n2", "equivocation: two checkpoints for seq 2")]


# -- durability ------------------------------------------------------------------------------------


def test_a_restored_core_keeps_its_certificates_and_never_prepares_another_digest():
    cores = make()
    cores["n0"].request(req(1), from_client=True)
    pump(cores, drop=lambda src, dst, m: kind(m) == "Commit")  # prepared everywhere, committed nowhere
    n2 = cores["n2"]
    assert sorted(n2.dirty) == [1] and n2.prepared_certs[1]
    view, pre_prepare, cert = n2.durable_record(1)
    assert view == 0 and pre_prepare == cert.pre_prepare

    keyring = Keyring.generate(MEMBERS, seed=7)
    again = PBFTCore("n2", MEMBERS, n2.settings, keyring)
    again.restore_log([(1, view, pre_prepare, cert)])
    slot = again.slots[1]
    assert slot.prepared and slot.prepares["n2"] == n2.slots[1].prepares["n2"]  # the same PREPARE
    assert slot.commits["n2"] == n2.slots[1].commits["n2"] and not again.outbox  # nothing re-sent
    # a second pre-prepare for seq 1 in view 0 is evidence, not something it prepares again
    other = cores["n0"]._make(PrePrepare(0, 1, digest(encode_batch([req(9)]))), encode_batch([req(9)]))
    again.receive("n0", other)
    assert again.slots[1].digest == n2.slots[1].digest and not again.outbox
    assert [e.what for e in again.evidence] == ["equivocation: two pre-prepares for view 0 seq 1"]
    # and its VIEW-CHANGE carries the certificate
    again.start_view_change(1)
    ((_, vc_message),) = again.outbox
    vc = decode_payload(vc_message.body)
    assert isinstance(vc, ViewChange) and vc.prepared == (cert,)
