"""The DST campaign of VM hosting and live migration (``novacron dst --protocol vm``).

Three hosts (1 GiB of guest memory each) and a controller that, while the nemesis strikes, starts
VMs (64-256 MiB, idle or writing up to 3,000 pages/s), stops them and live-migrates them, pre-copy
or post-copy, to a chosen or a placed host, one request at a time. Migrations give up on an
unanswered message after 2 s and a destination gives up a silent source after 8 s, so that
faults of a few seconds reach every failure path: refused, aborted, in doubt. Then ``recovery``
seconds of calm, and the checks:

* **one running copy**: no VM ever ran on two hosts at once (a probe looks every 2 ms of
  simulated time at which guests are running, not at what the hosts believe);
* **settled**: after the calm, no VM is still arriving, migrating or in doubt, and every hosted
  guest runs (but a copy left paused because its destination crashed, for whether the guest ran
  there before it died only an operator can say, and a post-copy guest whose source crashed with
  the pages it still lacked);
* **no lost VM**: a VM whose start was acknowledged, that nobody asked to stop and that was on no
  host when that host crashed, is on exactly one host; any other VM is on at most one;
* **inventory agrees**: every host's replica of the VM inventory (:mod:`novacron.hosting.inventory`,
  in the ASS map, hybrid settings) records each VM on the host that has it, and nothing more.

A crash loses the guests of the crashed host (the built-in hypervisor's live in the node process;
one outliving its management daemon would keep them), so the VMs a host held when it crashed,
in any state, may be gone. Names are never reused:
without a registry agreed by consensus, a name whose start went unanswered might exist on a host
the controller cannot reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from novacron.hosting import (
    ModelHypervisor,
    NoHostFits,
    OutcomeUnknown,
    VMClient,
    VMHost,
    VMNotFound,
    VMRequestRefused,
    VMSpec,
)
from novacron.hosting.inventory import PREFIX, hosts_in
from novacron.migration import MigrationSettings, Migrator
from novacron.sim.faults import Nemesis
from novacron.sim.seeds import derive_seed
from novacron.sim.simulation import Simulation
from novacron.sync import StateSync, SyncSettings

from .checks import Verdict, Violation

CAPACITY_MIB = 1024
#: how often the probe looks for a VM running twice (simulated seconds)
PROBE_INTERVAL = 0.002
#: every kind of fault applies (a crash loses the crashed host's guests: module docstring)
KINDS = Nemesis.KNOWN


def sim_random(sim: Simulation, purpose: str):
    import random

    return random.Random(derive_seed(sim.seed, purpose))


def settings(engine: str) -> MigrationSettings:
    return MigrationSettings.dwcp(engine=engine, timeout=2.0)


@dataclass
class VMSeedResult(Verdict):
    seed: int
    violations: list[Violation]
    replay: str
    requests: int = 0  # requests the controller made
    migrations: int = 0  # ... of which migrations that completed
    in_doubt: int = 0  # migrations whose switch-over went unanswered
    unknown: int = 0  # requests whose outcome the controller never learnt
    vms: int = 0  # VMs hosted at the end
    faults: list[str] = field(default_factory=list)
    byzantine: dict[str, str] = field(default_factory=dict)  # none here (the campaign's interface)

    def figures(self) -> dict:
        return {
            "requests": self.requests,
            "migrations": self.migrations,
            "in_doubt": self.in_doubt,
            "unknown": self.unknown,
            "vms": self.vms,
        }


@dataclass
class Controller:
    """The controller's requests and what it learnt of each VM."""

    started: set[str] = field(default_factory=set)  # acknowledged
    maybe: set[str] = field(default_factory=set)  # a start, stop or migration outcome unknown
    stopped: set[str] = field(default_factory=set)  # acknowledged
    requests: int = 0
    migrations: int = 0
    in_doubt: int = 0
    unknown: int = 0

    def live(self) -> list[str]:
        return sorted((self.started | self.maybe) - self.stopped)


def run_vm_seed(config, seed: int, topology) -> VMSeedResult:
    """One seed of ``config`` (a :class:`~.campaign.CampaignConfig` with protocol "vm")."""
    hosts = [f"h{i}" for i in range(config.nodes or 3)]
    sim = Simulation(topology(hosts, ["ctl"], config.rtt), seed=seed)
    controller = Controller()
    twice: list[str] = []

    def host(rt) -> VMHost:
        migrator = Migrator(rt, receive_timeout=8.0)
        inventory = StateSync(rt, peers=hosts, settings=SyncSettings.for_mode("hybrid"))
        return VMHost(
            rt,
            ModelHypervisor(rt),
            capacity_mib=CAPACITY_MIB,
            migrator=migrator,
            settings=settings,
            inventory=inventory,
        )

    sim.start(host, nodes=hosts)
    sim.start({"ctl": lambda rt: VMClient(rt, hosts, timeout=2.0, retry=0.25)})
    ctl = sim.runtime("ctl")
    ctl.spawn(_drive(ctl, controller, hosts, config.duration))
    ctl.spawn(_probe(sim, hosts, twice))
    crashed_with: set[str] = set()  # VMs a host held when it crashed (they may be gone)
    crash = sim.crash

    def crash_recording(node: str) -> None:
        if node in hosts and sim.runtime(node).alive:
            crashed_with.update(sim.runtime(node).app.vms)
        crash(node)

    sim.crash = crash_recording  # type: ignore[method-assign]
    kinds = tuple(k for k in config.faults if k in KINDS)
    if kinds:
        config.nemesis(kinds, [*hosts, "ctl"]).schedule(sim)
    if "partition" in kinds:
        _aim_at_switch_overs(sim, hosts, config.duration)
    sim.run(until=config.duration + config.recovery)

    placed = {h: sim.runtime(h).app.vms for h in hosts}
    violations = [Violation("one running copy", detail) for detail in twice[:5]]
    violations += check_hosts(placed, controller, crashed_with)
    violations += check_inventory(placed, {h: sim.runtime(h).app.inventory.sync for h in hosts})
    return VMSeedResult(
        seed=seed,
        violations=violations,
        replay=config.replay_command(seed),
        requests=controller.requests,
        migrations=controller.migrations,
        in_doubt=controller.in_doubt,
        unknown=controller.unknown,
        vms=sum(len(vms) for vms in placed.values()),
        faults=[text for _, text in sim.faults.log],
    )


async def _drive(rt, controller: Controller, hosts: list[str], until: float) -> None:
    """Random requests, one at a time, until ``until``."""
    client: VMClient = rt.app
    random = rt.random
    number = 0
    while rt.now() < until:
        await rt.sleep(random.expovariate(2.0))
        live = controller.live()
        choice = random.random()
        controller.requests += 1
        try:
            if choice < 0.35 or not live:
                name = f"vm{number}"
                number += 1
                spec = VMSpec(
                    name,
                    random.choice((64, 96, 128, 192, 256)),
                    dirty_rate=random.choice((0.0, 500.0, 3000.0)),
                    working_set_mib=16,
                )
                controller.maybe.add(name)  # until the host answers
                try:
                    await client.start(spec, host=random.choice((None, *hosts)))
                except (VMRequestRefused, NoHostFits, ValueError):
                    controller.maybe.discard(name)
                    raise
                controller.maybe.discard(name)
                controller.started.add(name)
            elif choice < 0.45:
                name = random.choice(live)
                try:
                    await client.stop(name)
                except OutcomeUnknown:
                    controller.maybe.add(name)
                    raise
                controller.stopped.add(name)
            else:
                name = random.choice(live)
                engine = random.choice(("precopy", "postcopy"))
                to = random.choice((None, *hosts))
                await client.migrate(name, to, engine=engine, timeout=30.0)
                controller.migrations += 1
        except OutcomeUnknown as exc:
            controller.unknown += 1
            controller.in_doubt += "in doubt" in str(exc)
        except (VMRequestRefused, VMNotFound, NoHostFits, ValueError):
            pass  # refused: nothing happened (the checks hold the hosts to that)


def _aim_at_switch_overs(sim: Simulation, hosts: list[str], until: float) -> None:
    """Partitions at the worst moment, as leader faults are aimed at leaders: a third of the
    switch-overs a destination receives before ``until`` cut it off from every other node for
    0.5-6 s, half of them before it acts on the message (the source never hears of it), half
    just after it resumed the guest (its answer is lost)."""
    rng = sim_random(sim, "dst:switch-over-faults")
    for node in hosts:
        migrator = sim.runtime(node).app.migrator
        migrator._switch = _cut_around(sim, node, migrator._switch, rng, until)


def _cut_around(sim: Simulation, node: str, switch, rng, until: float):
    def switch_with_faults(incoming, message):
        roll = rng.random()
        if sim.now >= until or roll >= 1 / 3:
            return switch(incoming, message)
        cut = lambda: sim.faults.partition([node], None, duration=rng.uniform(0.5, 6.0))  # noqa: E731
        if roll < 1 / 6:
            cut()
            return switch(incoming, message)  # (its answer goes nowhere: as if it never arrived)
        answer = switch(incoming, message)
        cut()
        return answer

    return switch_with_faults


async def _probe(sim: Simulation, hosts: list[str], twice: list[str]) -> None:
    """Every PROBE_INTERVAL: is any VM's guest running on two hosts?"""
    rt = sim.runtime("ctl")
    seen: set[str] = set()
    while True:
        await rt.sleep(PROBE_INTERVAL)
        running: dict[str, list[str]] = {}
        for node in hosts:
            for name, hosted in sim.runtime(node).app.vms.items():
                if hosted.vm is not None and hosted.vm.running:
                    running.setdefault(name, []).append(node)
        for name, where in running.items():
            if len(where) > 1 and name not in seen:
                seen.add(name)
                twice.append(f"{name} ran on {' and '.join(where)} at t={rt.now():.3f}")


def check_hosts(
    placed: dict[str, dict], controller: Controller, crashed_with: set[str] = frozenset()
) -> list[Violation]:
    """Settled, and no lost VM (see the module docstring), from the hosts' final VMs;
    ``crashed_with``: the VMs a host held when it crashed."""
    violations = []
    where: dict[str, list[str]] = {}
    for node, vms in placed.items():
        for name, hosted in vms.items():
            where.setdefault(name, []).append(node)
            # for an operator: a copy left paused because its destination crashed (it may have run
            # the guest), a post-copy guest whose source crashed with the pages it lacks
            stranded = hosted.state in ("paused", "arriving") and name in crashed_with
            if (hosted.state != "running" or not hosted.vm.running) and not stranded:
                violations.append(Violation("settled", f"{name} on {node} is {hosted.state} after the calm"))
    for name, nodes in sorted(where.items()):
        if len(nodes) > 1:
            violations.append(Violation("no lost VM", f"{name} is on {' and '.join(nodes)}"))
    for name in sorted(controller.started - controller.stopped - controller.maybe - crashed_with):
        if name not in where:
            violations.append(Violation("no lost VM", f"{name} was started and never stopped, yet is gone"))
    for name in sorted(controller.stopped):
        if name in where:
            violations.append(Violation("no lost VM", f"{name} was stopped, yet is on {where[name][0]}"))
    return violations


def check_inventory(placed: dict[str, dict], replicas: dict[str, StateSync]) -> list[Violation]:
    """Every replica's inventory records each VM on the host that has it, and nothing else (a VM
    still arriving is recorded once it has arrived)."""
    truth = {name: [node] for node, vms in placed.items() for name, h in vms.items() if h.state != "arriving"}
    violations = []
    for replica, sync in replicas.items():
        recorded = {
            key.removeprefix(PREFIX): hosts_in(sync.get(key).values)
            for key in sync.store.keys()
            if key.startswith(PREFIX) and sync.get(key).values
        }
        if recorded != truth:
            wrong = sorted(n for n in set(recorded) | set(truth) if recorded.get(n) != truth.get(n))
            detail = ", ".join(f"{n}: {recorded.get(n, [])} for {truth.get(n, [])}" for n in wrong[:3])
            violations.append(Violation("inventory agrees", f"{replica} records {detail}"))
    return violations
