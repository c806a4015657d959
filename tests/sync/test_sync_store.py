"""A replica's map (``novacron.sync.store``): its hash tree follows every change and depends only
on what the map holds, so equal maps compare equal top by top and leaf by leaf."""

import pytest

from novacron.sync import ReplicaStore, VersionSet
from novacron.sync.store import leaf_of

WIDTH = 4  # 4 tops over 16 leaves


def filled(node, keys):
    store = ReplicaStore(node, width=WIDTH)
    for key in keys:
        store.write(key, b"v")
    return store


def copy_of(store, node="b", order=None):
    other = ReplicaStore(node, width=WIDTH)
    for key in order or list(store.keys()):
        other.join(key, store.get(key))
    return other


def test_equal_maps_have_equal_hash_trees_whatever_order_they_were_built_in():
    a = filled("a", [f"k{i}" for i in range(50)])
    b = copy_of(a, order=list(reversed(list(a.keys()))))
    assert b.top_hashes() == a.top_hashes()
    assert b.leaf_hashes(list(range(WIDTH))) == a.leaf_hashes(list(range(WIDTH)))


def test_a_change_moves_only_its_leaf_and_its_top():
    store = filled("a", [f"k{i}" for i in range(50)])
    tops, leaves = store.top_hashes(), store.leaf_hashes(list(range(WIDTH)))
    state = store.write("k7", b"new", store.get("k7").context)
    leaf = leaf_of("k7", WIDTH)
    changed_tops = [t for t in range(WIDTH) if store.top_hashes()[t] != tops[t]]
    new_leaves = store.leaf_hashes(list(range(WIDTH)))
    changed_leaves = [i for i in range(WIDTH * WIDTH) if new_leaves[i] != leaves[i]]
    assert changed_tops == [leaf // WIDTH] and changed_leaves == [leaf]
    assert store.leaves_under([leaf // WIDTH]) == list(
        range(leaf // WIDTH * WIDTH, (leaf // WIDTH + 1) * WIDTH)
    )
    assert copy_of(store).top_hashes() == store.top_hashes() and copy_of(store).get("k7") == state


def test_a_join_reports_whether_anything_was_learnt():
    store = filled("a", ["k"])
    assert not store.join("k", store.get("k"))  # nothing new
    assert not store.join("k", VersionSet())
    assert store.join("k", VersionSet().write("b", b"2"))
    assert sorted(store.get("k").values) == [b"2", b"v"]


def test_summaries_list_every_key_of_the_leaves_asked_for():
    store = filled("a", [f"k{i}" for i in range(40)])
    wanted = [0, 3, 9]
    listed = [key for key, _ in store.summaries(wanted)]
    assert sorted(listed) == sorted(k for k in store.keys() if leaf_of(k, WIDTH) in wanted)
    assert all(summary == store.get(key).summary() for key, summary in store.summaries(wanted))


def test_a_store_needs_a_width():
    with pytest.raises(ValueError, match="width must be >= 1"):
        ReplicaStore("a", width=0)
