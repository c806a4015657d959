"""A replica's map (``novacron.sync.store``): bucket hashes follow every change and depend only on
what the map holds, so equal maps compare equal bucket by bucket."""

import pytest

from novacron.sync import ReplicaStore, VersionSet
from novacron.sync.store import bucket_of


def filled(node, writes, buckets=8):
    store = ReplicaStore(node, buckets=buckets)
    for key, value in writes:
        store.write(key, value)
    return store


def test_equal_maps_have_equal_bucket_hashes_whatever_order_they_were_built_in():
    a = filled("a", [(f"k{i}", b"v") for i in range(50)])
    b = ReplicaStore("b", buckets=8)
    for key in reversed(list(a.keys())):
        b.join(key, a.get(key))
    assert b.bucket_hashes() == a.bucket_hashes()


def test_a_change_moves_only_its_buckets_hash_and_undoing_it_restores_it():
    store = filled("a", [(f"k{i}", b"v") for i in range(50)])
    before = store.bucket_hashes()
    state = store.write("k7", b"new", store.get("k7").context)
    after = store.bucket_hashes()
    changed = [b for b in range(8) if before[b] != after[b]]
    assert changed == [bucket_of("k7", 8)]
    other = ReplicaStore("b", buckets=8)
    for key in store.keys():
        other.join(key, store.get(key))
    assert other.bucket_hashes() == after and other.get("k7") == state


def test_a_join_reports_whether_anything_was_learnt():
    store = filled("a", [("k", b"1")])
    assert not store.join("k", store.get("k"))  # nothing new
    assert not store.join("k", VersionSet())
    remote = VersionSet().write("b", b"2")
    assert store.join("k", remote)
    assert sorted(store.get("k").values) == [b"1", b"2"]


def test_summaries_list_every_key_of_the_buckets_asked_for():
    store = filled("a", [(f"k{i}", b"v") for i in range(40)])
    wanted = [0, 3]
    listed = [key for key, _ in store.summaries(wanted)]
    assert sorted(listed) == sorted(k for k in store.keys() if bucket_of(k, 8) in wanted)
    assert all(summary == store.get(key).summary() for key, summary in store.summaries(wanted))


def test_a_store_needs_a_bucket():
    with pytest.raises(ValueError, match="buckets must be >= 1"):
        ReplicaStore("a", buckets=0)
