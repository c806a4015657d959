"""The pure Raft core, driven by hand: messages and ticks in, Ready batches out (etcd/h11 style).

No runtime, no clock: each test states an input and the exact output Raft's rules demand.
"""

import random

import pytest

from novacron.consensus.api import Command
from novacron.consensus.raft import (
    CONFIG,
    FOLLOWER,
    LEADER,
    NOOP,
    PRECANDIDATE,
    ConfigChangeInProgress,
    Entry,
    HardState,
    NotLeader,
    RaftCore,
    RaftSettings,
    ReadState,
)
from novacron.consensus.raft.messages import (
    AppendEntries,
    AppendReply,
    Heartbeat,
    HeartbeatReply,
    InstallSnapshot,
    RequestVote,
    VoteReply,
)

# one tick = 10 ms: heartbeats every tick, election timeouts of 10-19 ticks
FAST = RaftSettings(heartbeat_interval=0.01, election_timeout=0.1)


def cmd(i: int) -> Command:
    return Command("c", i, b"op%d" % i)


def log_of(*terms: int) -> list[Entry]:
    """Entries 1..n with the given terms."""
    return [Entry(i, t, NOOP) for i, t in enumerate(terms, start=1)]


def core(node="n0", members=("n0", "n1", "n2"), settings=FAST, **kw) -> RaftCore:
    return RaftCore(node, members, settings, random.Random(7), **kw)


def drain(c: RaftCore):
    """Take one Ready, pretend it was persisted/sent/applied, return its messages."""
    rd = c.ready()
    c.advance(rd)
    return rd.messages


def sent(c: RaftCore, kind=None):
    msgs = drain(c)
    return [(dst, m) for dst, m in msgs if kind is None or isinstance(m, kind)]


class Net:
    """Cores wired by a perfect in-memory network; ``cut`` nodes are isolated."""

    def __init__(self, ids=("n0", "n1", "n2"), settings=FAST):
        self.cores = {i: RaftCore(i, ids, settings, random.Random(k)) for k, i in enumerate(ids)}
        self.cut: set[str] = set()

    def pump(self, rounds=200):
        for _ in range(rounds):
            out = []
            for c in self.cores.values():
                while c.has_ready():
                    rd = c.ready()
                    c.advance(rd)
                    out += [(c.id, dst, m) for dst, m in rd.messages]
            delivered = False
            for src, dst, m in out:
                if src not in self.cut and dst not in self.cut and dst in self.cores:
                    self.cores[dst].step(src, m)
                    delivered = True
            if not delivered:
                return

    def tick(self, n=1):
        for _ in range(n):
            for c in self.cores.values():
                c.tick()
            self.pump()

    def leaders(self):
        return [c for c in self.cores.values() if c.role == LEADER]

    def elect(self, max_ticks=200) -> RaftCore:
        for _ in range(max_ticks):
            self.tick()
            live = [c for c in self.leaders() if c.id not in self.cut]
            if live:
                return live[0]
        raise AssertionError("no leader elected")


# -- elections ---------------------------------------------------------------------------------


def test_a_follower_starts_a_pre_vote_after_its_randomised_election_timeout():
    c = core()
    for _ in range(FAST.election_ticks - 1):
        c.tick()
    assert c.role == FOLLOWER  # never before the minimum timeout
    for _ in range(FAST.election_ticks):
        c.tick()
    assert c.role == PRECANDIDATE
    assert c.term == 0  # a pre-vote changes nothing durable
    votes = sent(c, RequestVote)
    assert sorted(dst for dst, _ in votes) == ["n1", "n2"]
    assert all(m.pre_vote and m.term == 1 for _, m in votes)


def test_an_explicit_election_timeout_range_is_drawn_uniformly_with_both_ends_included():
    # The paper's 150-155 ms (§9.3): the tick shrinks to a tenth of the range width (0.5 ms).
    s = RaftSettings(heartbeat_interval=0.075, election_timeout=0.15, election_timeout_max=0.155)
    assert s.tick_interval == pytest.approx(0.0005)
    assert (s.election_ticks, s.election_ticks_max) == (300, 310)
    c = core(settings=s)
    drawn = set()
    for _ in range(2000):
        c._reset_election_timer()
        drawn.add(c._timeout)
    assert drawn == set(range(300, 311))
    # 150-151 ms still has distinct values; without a maximum the range stays [T, 2T)
    narrow = RaftSettings(heartbeat_interval=0.075, election_timeout=0.15, election_timeout_max=0.151)
    assert narrow.tick_interval == pytest.approx(0.0001)
    assert FAST.election_ticks_max == 2 * FAST.election_ticks - 1


def test_a_fixed_election_timeout_fires_exactly_then_and_the_tick_can_be_overridden():
    s = RaftSettings(
        heartbeat_interval=0.075, election_timeout=0.15, election_timeout_max=0.15, tick=0.001, pre_vote=False
    )
    assert (s.tick_interval, s.election_ticks, s.election_ticks_max) == (0.001, 150, 150)
    c = core(settings=s)
    for _ in range(149):
        c.tick()
    assert c.role == FOLLOWER
    c.tick()
    assert c.role == "candidate" and c.term == 1


def test_election_timeout_range_and_tick_are_validated():
    with pytest.raises(ValueError, match="election_timeout_max"):
        RaftSettings(heartbeat_interval=0.05, election_timeout=0.15, election_timeout_max=0.1)
    with pytest.raises(ValueError, match="tick"):
        RaftSettings(heartbeat_interval=0.05, election_timeout=0.15, tick=0.1)


def test_a_quorum_of_pre_votes_leads_to_a_real_election_and_a_leader_with_a_noop():
    c = core()
    for _ in range(2 * FAST.election_ticks):
        c.tick()
    drain(c)
    c.step("n1", VoteReply(1, True, pre_vote=True))
    assert c.role == "candidate" and c.term == 1 and c.vote == "n0"
    rd = c.ready()
    assert rd.hard_state == HardState(1, "n0", 0) and rd.must_sync  # the vote is durable first
    assert all(isinstance(m, RequestVote) and not m.pre_vote for _, m in rd.messages)
    c.advance(rd)
    c.step("n2", VoteReply(1, True))
    assert c.role == LEADER and c.leader_id == "n0"
    assert c.log.entries == [Entry(1, 1, NOOP)]  # the new leader's no-op (§5.4.2)


def test_a_three_node_cluster_elects_one_leader_and_commits_its_noop():
    net = Net()
    leader = net.elect()
    net.tick(3)
    assert len(net.leaders()) == 1
    assert {c.term for c in net.cores.values()} == {leader.term}
    assert all(c.commit == 1 and c.log.entries == [Entry(1, leader.term, NOOP)] for c in net.cores.values())


def test_pre_vote_keeps_a_partitioned_node_from_disrupting_the_leader_when_it_returns():
    net = Net()
    leader = net.elect()
    term = leader.term
    net.cut = {"n2"} if leader.id != "n2" else {"n1"}
    (isolated,) = net.cut
    net.tick(100)  # many election timeouts alone
    assert net.cores[isolated].term == term  # pre-votes failed, so its term never grew
    net.cut = set()
    net.tick(20)
    assert leader.role == LEADER and leader.term == term


def test_without_pre_vote_the_returning_node_deposes_the_leader():
    net = Net(settings=FAST.replace(pre_vote=False, check_quorum=False))
    leader = net.elect()
    term = leader.term
    net.cut = {"n2"} if leader.id != "n2" else {"n1"}
    (isolated,) = net.cut
    net.tick(100)
    assert net.cores[isolated].term > term + 3  # it bumped its term at every timeout
    net.cut = set()
    net.tick(40)
    assert max(c.term for c in net.cores.values()) > term  # the healthy leader was deposed


def test_a_vote_is_granted_at_most_once_per_term():
    c = core()
    c.step("n1", RequestVote(1, "n1", 0, 0))
    assert sent(c, VoteReply) == [("n1", VoteReply(1, True))]
    c.step("n2", RequestVote(1, "n2", 0, 0))
    assert sent(c, VoteReply) == [("n2", VoteReply(1, False))]
    c.step("n1", RequestVote(1, "n1", 0, 0))  # a retransmission: same answer
    assert sent(c, VoteReply) == [("n1", VoteReply(1, True))]
    c.step("n2", RequestVote(2, "n2", 0, 0))  # a new term: a new vote
    assert sent(c, VoteReply) == [("n2", VoteReply(2, True))]


def test_a_vote_is_refused_to_a_candidate_whose_log_is_less_up_to_date():
    c = core(entries=log_of(1, 2), hard_state=HardState(2, "", 0))
    c.step("n1", RequestVote(3, "n1", 5, 1))  # longer but older last term
    assert sent(c, VoteReply) == [("n1", VoteReply(3, False))]
    c.step("n2", RequestVote(3, "n2", 1, 2))  # same last term, shorter
    assert sent(c, VoteReply) == [("n2", VoteReply(3, False))]
    c.step("n2", RequestVote(3, "n2", 2, 2))
    assert sent(c, VoteReply) == [("n2", VoteReply(3, True))]


def test_a_follower_that_hears_from_its_leader_ignores_vote_requests():
    c = core()
    c.step("n1", Heartbeat(1, "n1", 0))
    drain(c)
    c.step("n2", RequestVote(2, "n2", 9, 9))
    assert c.term == 1 and sent(c) == []  # in the leader's lease: no term bump, no vote


# -- replication -------------------------------------------------------------------------------


def test_append_entries_fails_the_consistency_check_with_a_backtracking_hint():
    c = core(entries=log_of(1, 1, 2), hard_state=HardState(3, "", 0))
    c.step("n1", AppendEntries(3, "n1", 3, 3, (), 0))  # we hold term 2 at index 3
    ((_, reply),) = sent(c, AppendReply)
    assert not reply.success and reply.index == 3
    # our last entry at or before 3 with a term <= 3: the leader then jumps straight back to
    # its own last entry of a term <= 2, skipping the whole divergent term at once
    assert (reply.hint_index, reply.hint_term) == (3, 2)
    c.step("n1", AppendEntries(3, "n1", 7, 3, (), 0))  # beyond our log
    ((_, reply),) = sent(c, AppendReply)
    assert not reply.success and (reply.hint_index, reply.hint_term) == (3, 2)


def test_a_conflicting_suffix_is_replaced_and_an_old_duplicate_truncates_nothing():
    c = core(entries=log_of(1, 1, 2, 2), hard_state=HardState(3, "", 0))
    drain(c)
    c.step("n1", AppendEntries(3, "n1", 2, 1, (Entry(3, 3, NOOP),), 0))
    assert c.log.entries == log_of(1, 1, 3)
    rd = c.ready()
    assert rd.entries == [Entry(3, 3, NOOP)] and rd.must_sync  # the host replaces its stored suffix
    assert rd.messages == [("n1", AppendReply(3, True, 3))]
    c.advance(rd)
    c.step("n1", AppendEntries(3, "n1", 1, 1, (Entry(2, 1, NOOP),), 0))  # delayed older message
    assert c.log.entries == log_of(1, 1, 3)
    assert sent(c, AppendReply) == [("n1", AppendReply(3, True, 2))]


def test_the_follower_commit_index_never_passes_the_last_entry_it_checked():
    c = core(entries=log_of(1, 1, 1))
    c.step("n1", AppendEntries(1, "n1", 1, 1, (Entry(2, 1, NOOP),), 3))
    assert c.commit == 2  # entry 3 may be stale: not confirmed by this message


def test_a_leader_batches_proposals_and_pipelines_appends():
    net = Net()
    leader = net.elect()
    net.tick(2)
    follower = next(i for i in net.cores if i != leader.id)
    for i in range(10):
        leader.propose(cmd(i))
    msgs = [m for dst, m in leader.ready().messages if dst == follower and isinstance(m, AppendEntries)]
    assert len(msgs) == 1 and len(msgs[0].entries) == 10  # one message for ten proposals
    small = Net(settings=FAST.replace(max_append_bytes=100, max_inflight=3))
    leader = small.elect()
    small.tick(2)
    follower = next(i for i in small.cores if i != leader.id)
    for i in range(20):
        leader.propose(cmd(i))
    msgs = [m for dst, m in leader.ready().messages if dst == follower and isinstance(m, AppendEntries)]
    # bounded bytes per message, several in flight before any ack, at most max_inflight
    assert len(msgs) == 3 and all(1 <= len(m.entries) <= 2 for m in msgs)
    assert [m.prev_index for m in msgs] == [msgs[0].prev_index + 2 * k for k in range(3)]


def test_fast_backtracking_skips_a_whole_divergent_term_in_one_round_trip():
    ids = ("n0", "n1", "n2")
    net = Net(ids)
    for k, i in enumerate(ids):  # n2 holds a long suffix of term 2 that term 3 replaced
        terms = (1, 1, 2, 2, 2, 2, 2, 2, 2, 2) if i == "n2" else (1, 1, 3, 3, 3, 3)
        hard = HardState(terms[-1], "", 2)
        net.cores[i] = RaftCore(i, ids, FAST, random.Random(k), entries=log_of(*terms), hard_state=hard)
    rejections = []
    for i in ("n0", "n1"):
        step = net.cores[i].step

        def spy(src, m, step=step):
            if isinstance(m, AppendReply) and not m.success:
                rejections.append(m)
            step(src, m)

        net.cores[i].step = spy
    leader = net.elect()
    assert leader.id != "n2"  # its last term (2) is older: it cannot win
    net.tick(3)
    follower = net.cores["n2"]
    assert follower.log.entries == leader.log.entries and follower.commit == leader.commit
    assert len(rejections) == 1  # not one per divergent entry


def test_figure_8_a_leader_does_not_commit_an_old_term_entry_by_counting_replicas():
    # S1 leads term 4 with entry 2 from term 2 (Figure 8 (c) of the Raft paper).
    ids = ("s1", "s2", "s3", "s4", "s5")

    def leader_s1(settings):
        c = RaftCore(
            "s1", ids, settings, random.Random(1), entries=log_of(1, 2), hard_state=HardState(3, "", 1)
        )
        for _ in range(2 * settings.election_ticks):
            c.tick()
        drain(c)
        c.step("s2", VoteReply(4, True, pre_vote=True))
        c.step("s3", VoteReply(4, True, pre_vote=True))
        drain(c)
        c.step("s2", VoteReply(4, True))
        c.step("s3", VoteReply(4, True))
        assert c.role == LEADER and c.term == 4
        drain(c)
        return c

    c = leader_s1(FAST)
    # S2 and S3 now store entry 2 (term 2): a majority, but of an older term.
    c.step("s2", AppendReply(4, True, 2))
    c.step("s3", AppendReply(4, True, 2))
    assert c.commit == 1  # committing it could be undone by S5 (Figure 8 (d))
    c.step("s2", AppendReply(4, True, 3))
    c.step("s3", AppendReply(4, True, 3))
    assert c.commit == 3  # entry 3 is of term 4: committing it commits entry 2 indirectly

    bad = leader_s1(FAST.replace(unsafe_commit_old_terms=True))
    bad.step("s2", AppendReply(4, True, 2))
    bad.step("s3", AppendReply(4, True, 2))
    assert bad.commit == 2  # the deliberate bug: committed, yet S5 (term 3 at index 2) can still win


def test_the_leader_counts_itself_only_once_its_own_entries_are_durable():
    c = core(members=("n0",))
    for _ in range(2 * FAST.election_ticks):
        c.tick()
    assert c.role == LEADER and c.commit == 0
    rd = c.ready()
    assert rd.entries and rd.committed == []  # not committed before the host synced it
    c.advance(rd)
    assert c.commit == 1


# -- ReadIndex ---------------------------------------------------------------------------------


def test_read_index_is_released_only_after_a_quorum_confirms_leadership():
    net = Net()
    leader = net.elect()
    net.tick(2)
    others = [i for i in net.cores if i != leader.id]
    leader.read_index(42)
    rd = leader.ready()
    assert rd.read_states == []
    beats = [(dst, m) for dst, m in rd.messages if isinstance(m, Heartbeat)]
    assert {dst for dst, _ in beats} == set(others)
    leader.advance(rd)
    ctx = beats[0][1].ctx
    leader.step(others[0], HeartbeatReply(leader.term, ctx - 1))  # an answer to an older round
    assert leader.ready().read_states == []
    leader.step(others[0], HeartbeatReply(leader.term, ctx))
    assert leader.ready().read_states == [ReadState(42, leader.commit)]


def test_a_follower_refuses_reads_and_proposals_with_a_leader_hint():
    net = Net()
    leader = net.elect()
    follower = next(c for c in net.cores.values() if c is not leader)
    with pytest.raises(NotLeader) as info:
        follower.propose(cmd(1))
    assert info.value.leader == leader.id
    with pytest.raises(NotLeader):
        follower.read_index(1)


def test_a_leader_cut_off_from_its_quorum_steps_down():
    net = Net()
    leader = net.elect()
    net.cut = {leader.id}
    net.tick(2 * FAST.election_ticks + 1)
    assert leader.role == FOLLOWER


# -- snapshots ---------------------------------------------------------------------------------


def test_a_lagging_follower_gets_the_snapshot_in_chunks():
    net = Net(settings=FAST.replace(snapshot_chunk_bytes=1000, compaction_keep=0))
    leader = net.elect()
    net.tick(2)
    lagging = next(i for i in net.cores if i != leader.id)
    net.cut = {lagging}
    for i in range(20):
        leader.propose(cmd(i))
    net.pump()
    net.tick(1)
    assert leader.applied == leader.commit == 21
    upto = leader.compact(21, b"s" * 2500)
    assert upto == 21 and leader.log.entries == []
    chunks = []
    original = net.cores[lagging].step

    def spy(src, m):
        if isinstance(m, InstallSnapshot):
            chunks.append((m.offset, len(m.data)))
        original(src, m)

    net.cores[lagging].step = spy
    net.cut = set()
    follower = net.cores[lagging]
    follower_readies = []
    orig_ready = follower.ready

    def ready_spy():
        rd = orig_ready()
        follower_readies.append(rd)
        return rd

    follower.ready = ready_spy
    net.tick(3)
    assert chunks == [(0, 1000), (1000, 1000), (2000, 500)]
    (installed,) = [rd.snapshot for rd in follower_readies if rd.snapshot is not None]
    assert (installed.index, installed.term, installed.data) == (21, leader.term, b"s" * 2500)
    assert follower.commit == 21 and follower.log.offset == 21
    leader.propose(cmd(99))
    net.tick(2)
    assert follower.log.entries == leader.log.entries and follower.commit == leader.commit


# -- membership --------------------------------------------------------------------------------


def test_a_configuration_change_takes_effect_on_append_and_goes_one_at_a_time():
    ids = ("n0", "n1", "n2", "n3")
    net = Net(ids)
    for c in net.cores.values():  # n3 starts outside the configuration
        c._base_members = ("n0", "n1", "n2")
        c._recompute_members()
    n3 = net.cores["n3"]
    net.tick(60)
    assert n3.role == FOLLOWER and n3.term == 0  # not a member: it never campaigns
    leader = net.elect()
    net.tick(2)
    index, _ = leader.propose_config(add="n3")
    assert leader.members == ("n0", "n1", "n2", "n3") and leader.log.entry(index).kind == CONFIG
    with pytest.raises(ConfigChangeInProgress):
        leader.propose_config(remove="n1")
    net.tick(3)
    assert leader.commit >= index
    assert n3.members == ("n0", "n1", "n2", "n3") and n3.log.entries == leader.log.entries
    leader.propose_config(remove=leader.id)  # the leader removes itself
    net.tick(3)
    assert leader.role == FOLLOWER and leader.id not in leader.members
    net.tick(60)
    (new,) = net.leaders()
    assert new.id != leader.id and leader.id not in new.members
