"""A key's state (``novacron.sync.versions``): concurrent writes are kept, a write replaces exactly
what its writer read, and joining states converges whatever the order (exhaustively by hypothesis)."""

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novacron.sync import Summary, VersionSet, VersionVector, Writer, ahead
from novacron.sync.versions import join_all

EMPTY = VersionSet()


def test_a_write_that_read_the_value_replaces_it():
    first = EMPTY.write("a", b"1")
    second = first.write("a", b"2", first.context)
    assert second.values == [b"2"]
    assert second.context == VersionVector.of({"a": 2})


def test_two_blind_writes_at_one_replica_are_both_kept():
    """With a plain version vector per value the second would dominate the first and lose it."""
    state = EMPTY.write("a", b"x").write("a", b"y")
    assert sorted(state.values) == [b"x", b"y"]


def test_concurrent_writes_at_two_replicas_are_siblings_until_a_write_reads_both():
    at_a = EMPTY.write("a", b"from-a")
    at_b = EMPTY.write("b", b"from-b")
    both = at_a.join(at_b)
    assert sorted(both.values) == [b"from-a", b"from-b"]
    resolved = both.write("b", b"merged", both.context)
    assert resolved.values == [b"merged"]
    assert at_a.join(resolved).values == [b"merged"]  # a replica that had only a's value agrees


def test_a_replica_hears_of_a_nodes_unreplaced_writes_together_so_a_read_replaces_what_it_saw():
    """Per writer the state holds a window of its latest values, never a later write without the
    earlier ones still standing: a context read anywhere covers only what the reader was shown."""
    xy = EMPTY.write("a", b"x").write("a", b"y")  # two blind writes at a
    at_b = EMPTY.join(xy)
    assert sorted(at_b.values) == [b"x", b"y"]  # b hears of both, or of neither
    z = at_b.write("b", b"z", at_b.context)
    assert xy.join(z).values == [b"z"]
    early = EMPTY.write("b", b"w", EMPTY.context)  # read at b before the news: replaces nothing
    assert sorted(xy.join(early).values) == [b"w", b"x", b"y"]


def test_a_delete_is_a_tombstone_that_wins_over_what_it_read():
    state = EMPTY.write("a", b"v")
    gone = state.write("b", None, state.context)
    assert gone.values == [] and gone.siblings == [None]
    assert state.join(gone).values == []
    concurrent = state.write("a", b"new")  # read neither the delete nor v
    assert concurrent.join(gone).values == [b"new"]  # v is deleted; the unseen write stands
    assert None in concurrent.join(gone).siblings


def test_states_round_trip_through_the_wire_codec():
    state = EMPTY.write("a", b"1").write("b", None).write("a", b"2")
    raw = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(raw, type=VersionSet) == state


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (VersionSet((Writer("b", 1, (b"x",)), Writer("a", 1, (b"y",)))), "sorted by node"),
        (VersionSet((Writer("a", 1, (b"x",)), Writer("a", 2, (b"y",)))), "distinct"),
        (VersionSet((Writer("a", 1, (b"x", b"y")),)), "2 values but only 1 writes"),
    ],
)
def test_a_malformed_state_is_refused_with_a_reason(state, message):
    with pytest.raises(ValueError, match=message):
        state.check()


def test_negative_counters_do_not_decode():
    raw = msgspec.msgpack.encode([[["a", -1, []]]])
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(raw, type=VersionSet)


def test_summaries_say_who_has_news_for_whom():
    old = EMPTY.write("a", b"1")
    new = old.write("a", b"2", old.context)
    assert ahead(new.summary(), old.summary()) and not ahead(old.summary(), new.summary())
    assert not ahead(new.summary(), new.summary())
    assert ahead(old.summary(), Summary())
    sibling = old.write("b", b"3")
    assert ahead(sibling.summary(), new.summary()) and ahead(new.summary(), sibling.summary())


# -- exhaustive: random histories of writes, reads and exchanges between replicas ----------------
REPLICAS = ("a", "b", "c")


@st.composite
def histories(draw):
    """Steps: ("write", replica, blind?) or ("join", from, to)."""
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("write"), st.sampled_from(REPLICAS), st.booleans()),
                st.tuples(st.just("join"), st.sampled_from(REPLICAS), st.sampled_from(REPLICAS)),
            ),
            max_size=40,
        )
    )
    return steps


def replay(steps):
    """Run a history; returns the replicas' states and every write as (dot, context it read,
    value). Values are named by their dots, so two histories agree on what a dot holds."""
    states = dict.fromkeys(REPLICAS, EMPTY)
    writes = []
    for step in steps:
        if step[0] == "write":
            _, replica, blind = step
            context = None if blind else states[replica].context
            counter = states[replica].context.get(replica) + 1
            value = f"{replica}{counter}".encode()  # a write's value is fixed by its dot
            states[replica] = states[replica].write(replica, value, context)
            writes.append(((replica, counter), context or VersionVector(), value))
        else:
            _, src, dst = step
            states[dst] = states[dst].join(states[src])
    return states, writes


@settings(max_examples=300, deadline=None)
@given(histories())
def test_joining_every_state_converges_in_any_order_and_loses_no_unread_write(steps):
    states, writes = replay(steps)
    values = list(states.values())
    final = join_all(values)
    assert join_all(reversed(values)) == final  # order does not matter
    assert final.join(final) == final  # idempotent
    for state in values:
        assert state.join(final) == final and final.join(state) == final  # nothing beyond the union
    held = set(final.dots())
    for dot, _, value in writes:
        if dot in held:
            assert value in final.siblings
        else:  # gone only if a later write's writer had read it
            assert any(context.get(dot[0]) >= dot[1] for _, context, _ in writes), f"{dot} lost"


@settings(max_examples=200, deadline=None)
@given(histories(), histories())
def test_join_is_commutative_and_associative(first, second):
    x, _ = replay(first)
    y, _ = replay(second)
    a, b, c = x["a"], y["b"], x["c"].join(y["a"])
    assert a.join(b) == b.join(a)
    assert a.join(b).join(c) == a.join(b.join(c))


@settings(max_examples=200, deadline=None)
@given(histories())
def test_ahead_is_exactly_whether_a_join_would_change_the_other(steps):
    states, _ = replay(steps)
    for x in states.values():
        for y in states.values():
            assert ahead(x.summary(), y.summary()) == (y.join(x) != y)
