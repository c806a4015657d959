"""The campaign's checks, each shown to pass on good evidence and to fail on bad."""

from novacron.consensus import Command, History
from novacron.sim.dst import Recorder, checks


def cmd(n):
    return Command("c", n, b"op%d" % n)


def test_election_safety_allows_one_leader_per_term_only():
    rec = Recorder()
    rec.leader("r0", 1)
    rec.leader("r1", 2)
    rec.leader("r1", 2)  # reported twice by the same node: still one leader
    assert checks.election_safety(rec) == []
    rec.leader("r2", 2)
    [violation] = checks.election_safety(rec)
    assert "term 2" in violation.detail and "r1" in violation.detail and "r2" in violation.detail


def test_state_machine_safety_catches_different_commands_at_one_index():
    rec = Recorder()
    for node in ("r0", "r1", "r2"):
        rec.applied(node, 1, cmd(1), b"")
    assert checks.state_machine_safety(rec) == []
    rec.applied("r2", 2, cmd(2), b"")
    rec.applied("r0", 2, cmd(3), b"")
    [violation] = checks.state_machine_safety(rec)
    assert "index 2" in violation.detail


def test_state_machine_safety_ignores_byzantine_replicas():
    rec = Recorder()
    rec.applied("r0", 1, cmd(1), b"")
    rec.applied("evil", 1, cmd(9), b"")
    assert checks.state_machine_safety(rec, ignore=frozenset({"evil"})) == []
    assert checks.state_machine_safety(rec) != []


def test_log_matching_compares_the_prefix_of_matching_entries():
    good = {"a": [(1, 1), (2, 1), (3, 2)], "b": [(1, 1), (2, 1), (3, 2), (4, 3)], "c": [(1, 1), (2, 2)]}
    assert checks.log_matching(good) == []
    bad = {"a": [(1, 1), (2, 1), (3, 2)], "b": [(1, 1), (2, 2), (3, 2)]}
    [violation] = checks.log_matching(bad)
    assert "index 3" in violation.detail and "index 2" in violation.detail


def test_log_matching_tolerates_compacted_logs():
    logs = {"a": [(5, 2), (6, 2)], "b": [(1, 1), (2, 1), (3, 2), (4, 2), (5, 2), (6, 2)]}
    assert checks.log_matching(logs) == []


def test_replicas_at_the_same_index_must_hold_the_same_state():
    assert checks.same_state({"a": (3, b"x"), "b": (3, b"x"), "c": (2, b"y")}) == []
    [violation] = checks.same_state({"a": (3, b"x"), "b": (3, b"z")})
    assert "index 3" in violation.detail


def test_progress_needs_an_operation_completed_after_the_heal():
    h = History()
    h.ok(h.invoke("c", "put", "k", 1.0, value=b"v"), 2.0)
    assert checks.progress(h.operations, healed_at=5.0, within=3.0) != []
    h.ok(h.invoke("c", "put", "k", 5.5, value=b"w"), 6.0)
    assert checks.progress(h.operations, healed_at=5.0, within=3.0) == []


def test_linearizability_violations_are_reported_with_the_operations():
    h = History()
    h.ok(h.invoke("c1", "put", "k", 0.0, value=b"1"), 1.0)
    h.ok(h.invoke("c2", "get", "k", 2.0), 3.0, read=None)  # the completed write is not seen
    [violation] = checks.linearizable(h.operations)
    assert violation.check == "linearizability" and "get" in violation.detail
