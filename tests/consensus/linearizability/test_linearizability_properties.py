"""Properties over generated histories: correct histories pass, broken ones fail, and the search
agrees with brute force on every small history."""

import itertools
from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from linearizability_histories import Plan, simulate

from novacron.consensus.history import Operation
from novacron.consensus.linearizability import check

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

times = st.floats(min_value=0.0, max_value=5.0, allow_nan=False)
plans = st.lists(
    st.builds(
        Plan,
        client=st.integers(0, 5),
        kind=st.sampled_from(["get", "get", "put", "cas", "delete"]),
        key=st.integers(0, 2),
        choice=st.integers(0, 3),
        think=times,
        before=times,
        after=times,
        outcome=st.sampled_from(["ok", "ok", "ok", "ok", "info", "lost", "fail", "pending"]),
    ),
    max_size=40,
)


@SETTINGS
@given(plans)
def test_histories_of_a_sequential_model_with_concurrent_intervals_are_linearizable(plans):
    result = check(simulate(plans))
    assert result.ok is True, result.explain()


@SETTINGS
@given(plans, st.data())
def test_changing_one_read_to_a_value_never_written_makes_the_history_not_linearizable(plans, data):
    ops = simulate(plans)
    reads = [op for op in ops if op.kind == "get" and op.status == "ok"]
    assume(reads)
    victim = data.draw(st.sampled_from(reads))
    broken = replace(victim, read=b"never written")
    result = check([broken if op.id == victim.id else op for op in ops])
    assert result.ok is False
    assert result.failure(victim.key).window == [broken]


@SETTINGS
@given(plans, st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_the_order_operations_are_listed_in(plans, rnd):
    ops = simulate(plans)
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    assert check(shuffled).ok == check(ops).ok


# --- Against brute force ----------------------------------------------------------------------------

values = st.sampled_from([None, b"a", b"b"])


@st.composite
def small_histories(draw) -> list[Operation]:
    """Up to 6 arbitrary operations on one key: any intervals, any outputs, any outcomes."""
    ops = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["get", "put", "delete", "cas"]))
        start = draw(st.integers(0, 8))
        status = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        end = None if status == "info" else start + draw(st.integers(0, 4))
        ops.append(
            Operation(
                i,
                "c",
                kind,
                "x",
                float(start),
                value=draw(values) if kind in ("put", "cas") else None,
                expected=draw(values) if kind == "cas" else None,
                complete=None if end is None else float(end),
                status=status,
                read=draw(values) if kind == "get" else None,
                swapped=draw(st.booleans()) if kind == "cas" else None,
            )
        )
    return ops


def brute_force_linearizable(ops: list[Operation]) -> bool:
    """Try every order of the ok operations plus any subset of the unknown-outcome ones."""
    must = [op for op in ops if op.status == "ok"]
    maybe = [op for op in ops if op.status in ("info", "pending")]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            for order in itertools.permutations(must + list(extra)):
                if respects_real_time(order) and follows_register(order):
                    return True
    return False


def respects_real_time(order) -> bool:
    # An operation that returned before another was invoked must come first (touching = concurrent).
    return not any(
        later.complete is not None and later.complete < earlier.invoke
        for i, earlier in enumerate(order)
        for later in order[i + 1 :]
    )


def follows_register(order) -> bool:
    state = None
    for op in order:
        checked = op.status == "ok"
        if op.kind == "get" and checked and op.read != state:
            return False
        if op.kind == "put":
            state = op.value
        elif op.kind == "delete":
            state = None
        elif op.kind == "cas":
            holds = state == op.expected
            if checked and op.swapped != holds:
                return False
            if holds:
                state = op.value
    return True


@settings(max_examples=400, deadline=None)
@given(small_histories())
def test_the_verdict_agrees_with_brute_force_on_small_histories(ops):
    assert check(ops).ok == brute_force_linearizable(ops)


@settings(max_examples=200, deadline=None)
@given(small_histories())
def test_every_reported_window_is_itself_not_linearizable_by_brute_force(ops):
    result = check(ops)
    assume(result.ok is False)
    assert not brute_force_linearizable(result.failures[0].window)
