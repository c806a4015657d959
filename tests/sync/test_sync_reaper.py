"""Tombstone reaping: a deleted key is forgotten by every replica once all of them hold its
tombstone, never while one does not (so the deleted value cannot come back), never over a write
that came after, and a replica's later writes to the key are numbered above anything forgotten."""

from __future__ import annotations

import pytest

from novacron.sim import Simulation, topologies
from novacron.sync import StateSync, SyncSettings, VersionVector
from novacron.sync.reaper import FLOOR_KEY
from novacron.sync.service import STORAGE_PREFIX

REGIONS = ("East US", "West Europe", "Southeast Asia")
#: anti-entropy every second; tombstones asked about after 5 s, every 2 s
SETTINGS = SyncSettings(fanout=None, interval=1.0, tombstone_grace=5.0, reap_interval=2.0)


class Cluster:
    def __init__(self, seed: int = 0, settings: SyncSettings = SETTINGS) -> None:
        self.sim = Simulation(topologies.wan(REGIONS), seed=seed)
        self.nodes = self.sim.node_ids
        self.sim.start(lambda rt: StateSync(rt, peers=self.nodes, settings=settings))

    def at(self, node: str) -> StateSync:
        return self.sim.runtime(node).app

    def do(self, node: str, fn):
        async def go(rt):
            return await fn(rt.app)

        return self.sim.run_until_complete(node, go, timeout=60)

    def wait(self, seconds: float) -> None:
        self.sim.run(until=self.sim.now + seconds)

    def everywhere(self, key: str) -> list[list[bytes | None]]:
        return [self.at(n).get(key).siblings for n in self.nodes if self.sim.runtime(n).alive]

    def held(self, key: str) -> list[bool]:
        return [key in self.at(n).store for n in self.nodes]


def put_then_delete(c: Cluster, node: str, key: str = "vm/1") -> None:
    c.do(node, lambda s: s.put(key, b"v1"))
    c.wait(2.0)
    c.do(node, lambda s: s.delete(key, s.get(key).context))
    c.wait(2.0)


def test_a_deleted_key_is_forgotten_everywhere_once_every_replica_holds_its_tombstone():
    c = Cluster()
    a = c.nodes[0]
    put_then_delete(c, a)
    assert c.held("vm/1") == [True, True, True]  # tombstones, within the grace
    assert all(c.at(n).get("vm/1").is_tombstone for n in c.nodes)
    c.wait(10.0)
    assert c.held("vm/1") == [False, False, False]
    assert all(STORAGE_PREFIX + "vm/1" not in c.sim.runtime(n).storage.keys(STORAGE_PREFIX) for n in c.nodes)
    assert sum(c.at(n).stats.tombstones_reaped for n in c.nodes) == 3
    assert c.everywhere("vm/1") == [[], [], []]


def test_a_replica_cut_off_holds_the_reap_back_and_the_deleted_value_never_comes_back():
    c = Cluster()
    a, b, z = c.nodes
    c.do(a, lambda s: s.put("vm/1", b"old"))
    c.wait(2.0)
    c.sim.faults.partition([z], None, duration=30.0)  # z keeps "old" and misses the delete
    c.do(a, lambda s: s.delete("vm/1", s.get("vm/1").context))
    c.wait(25.0)
    assert c.held("vm/1") == [True, True, True]  # z never answered: a and b keep the tombstone
    assert c.at(z).get("vm/1").values == [b"old"]
    c.wait(20.0)  # healed: z learns the tombstone, then everyone forgets the key
    assert c.held("vm/1") == [False, False, False]
    c.wait(10.0)
    assert c.everywhere("vm/1") == [[], [], []]  # "old" did not come back


def test_a_write_after_the_tombstone_keeps_the_key():
    c = Cluster()
    a, b, _ = c.nodes
    put_then_delete(c, a)
    c.wait(2.5)  # the grace is nearly over
    c.do(b, lambda s: s.put("vm/1", b"again", s.get("vm/1").context))
    c.wait(15.0)
    assert c.everywhere("vm/1") == [[b"again"]] * 3


def test_a_replica_that_missed_the_reap_does_not_swallow_a_later_write_numbered_from_zero():
    """a forgot the key and writes it again; z never acted on a Reap and still holds the old
    tombstone, which has seen a's writes 1 and 2. Numbered from zero, a's new write would be
    write 1 again, which z takes for one it saw replaced: lost. a's floor numbers it 3."""
    c = Cluster()
    a, _, z = c.nodes

    async def never(items):  # z loses every Reap (and forgets nothing in its own rounds)
        return None

    c.at(z).reaper._forget = never
    put_then_delete(c, a)
    c.wait(10.0)
    assert c.held("vm/1") == [False, False, True]
    state = c.do(a, lambda s: s.put("vm/1", b"new"))
    assert state.context.get(a) == 3  # above the 2 writes a gave the forgotten history
    c.wait(10.0)
    assert c.everywhere("vm/1") == [[b"new"]] * 3


def test_the_floor_survives_a_restart():
    c = Cluster()
    a = c.nodes[0]
    put_then_delete(c, a)
    c.wait(10.0)
    assert not c.at(a).store.get("vm/1").writers and FLOOR_KEY in c.sim.runtime(a).storage.keys("ass-meta/")
    c.sim.crash(a)
    c.sim.restart(a)
    assert c.at(a).reaper.floor == 2
    assert c.do(a, lambda s: s.put("vm/1", b"new")).context.get(a) == 3


def test_reaping_can_be_turned_off():
    c = Cluster(settings=SyncSettings(interval=1.0, tombstone_grace=0.0, reap_interval=None))
    put_then_delete(c, c.nodes[0])
    c.wait(30.0)
    assert c.held("vm/1") == [True, True, True]


def test_a_mode_change_keeps_the_reaping_settings():
    c = Cluster()
    service = c.at(c.nodes[0])
    service.set_mode("internet")
    assert service.settings.interval == 5.0 and service.settings.tombstone_grace == 5.0
    assert service.settings.reap_interval == 2.0


@pytest.mark.parametrize(
    "changes, field",
    [({"tombstone_grace": -1.0}, "tombstone_grace"), ({"reap_interval": 0.0}, "reap_interval")],
)
def test_settings_refuse_impossible_reaping_values(changes, field):
    with pytest.raises(ValueError, match=field):
        SyncSettings(**changes)


def test_a_write_in_progress_is_never_reaped_under():
    """The tombstone's own replica starts a write to the key while a reap round is out: the write
    wins, on every replica."""
    c = Cluster()
    a = c.nodes[0]
    put_then_delete(c, a)
    service = c.at(a)
    reap = service.reaper._forget

    async def write_first(items):
        await service.put("vm/1", b"racing", VersionVector())  # blind: beside the tombstone
        await reap(items)

    service.reaper._forget = write_first
    c.wait(15.0)
    assert all(b"racing" in siblings for siblings in c.everywhere("vm/1"))
