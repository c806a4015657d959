"""``novacron vm``: VMs started, listed, live-migrated and stopped on a cluster of real node
processes, with refusals that say why and usage errors named."""

from __future__ import annotations

import json
from urllib.request import ProxyHandler, build_opener

import pytest
from prometheus_client.parser import text_string_to_metric_families

from novacron.cli import main as novacron
from novacron.cli.cluster_cmd import ClusterManifest


def metrics(port: int) -> dict[str, dict]:
    """``{family: {labels as a sorted tuple: value}}`` from a node's /metrics."""
    direct = build_opener(ProxyHandler({}))  # loopback: never through a proxy from the environment
    with direct.open(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return {
        f.name: {
            tuple(sorted(s.labels.items())): s.value for s in f.samples if not s.name.endswith("_created")
        }
        for f in text_string_to_metric_families(text)
    }


def eventually(check, attempts: int = 200) -> bool:
    """``check()`` until it holds (the inventory is written in the background and replicated)."""
    return any(check() for _ in range(attempts))


def test_vms_start_where_they_fit_best_migrate_live_and_stop(tmp_path, capsys):
    directory = str(tmp_path / "cluster")

    def vm(*argv):
        return novacron(["vm", *argv, "--cluster", directory])

    try:
        assert novacron(["cluster", "up", "--dir", directory, "--nodes", "3", "--vm-memory", "256"]) == 0
        capsys.readouterr()
        assert vm("start", "web1", "--memory", "96", "--dirty-rate", "2000", "--working-set", "16") == 0
        assert capsys.readouterr().out.strip() == "web1 started on n1"  # all equal: the lowest id
        assert vm("start", "db1", "--memory", "128", "--on", "n2") == 0
        assert vm("start", "big", "--memory", "300") == 1  # fits nowhere: the reason, per host
        err = capsys.readouterr().err
        assert "no host has 300 MiB free for big: n1 160/256 MiB free, n2 128/256 MiB free, n3 256/256" in err
        assert vm("start", "web1", "--memory", "8") == 1
        assert "n1 already has a VM named web1" in capsys.readouterr().err

        assert vm("migrate", "web1") == 0  # best fit among the others: n2 (128 free) over n3 (256)
        out = capsys.readouterr().out
        assert "n1 -> n2 (precopy)" in out and "downtime" in out and "96 MiB of memory" in out
        assert vm("migrate", "web1", "--to", "n3", "--postcopy") == 0
        assert "n2 -> n3 (postcopy)" in capsys.readouterr().out
        assert vm("list") == 0
        listing = capsys.readouterr().out
        assert "n1: 0 of 256 MiB used, 0 VMs" in listing and "n3: 96 of 256 MiB used, 1 VMs" in listing
        assert any(line.split()[:2] == ["web1", "n3"] and "running" in line for line in listing.splitlines())

        manifest = ClusterManifest.load(tmp_path / "cluster")
        ports = {m.id: m.http_port for m in manifest.members}
        n3 = metrics(ports["n3"])
        assert n3["novacron_vms"][(("state", "running"),)] == 1
        assert n3["novacron_vm_memory_used_bytes"][()] == 96 << 20
        assert n3["novacron_vm_migrations_in"][(("outcome", "finished"),)] == 1
        assert metrics(ports["n1"])["novacron_vm_migrations_out"][(("outcome", "completed"),)] == 1

        assert eventually(lambda: vm("where", "web1") == 0 and "web1: n3" in capsys.readouterr().out)
        assert vm("stop", "web1") == 0 and "web1 stopped on n3" in capsys.readouterr().out
        assert eventually(lambda: vm("where", "web1") == 1 and "web1: no record" in capsys.readouterr().out)
        assert vm("migrate", "web1") == 1
        assert "no host has a VM named 'web1'" in capsys.readouterr().err
        direct = build_opener(ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{ports['n3']}/healthz", timeout=30) as reply:
            assert json.loads(reply.read())["status"] == "ok"
    finally:
        novacron(["cluster", "down", "--dir", directory, "--grace", "5"])


def test_a_cluster_started_without_vm_memory_says_so(tmp_path, capsys):
    directory = str(tmp_path / "cluster")
    try:
        assert novacron(["cluster", "up", "--dir", directory, "--nodes", "1", "--vm-memory", "0"]) == 0
        assert novacron(["vm", "list", "--cluster", directory]) == 2
        assert "host no VMs (started with --vm-memory 0)" in capsys.readouterr().err
    finally:
        novacron(["cluster", "down", "--dir", directory, "--grace", "5"])


@pytest.mark.parametrize(
    "argv, problem",
    [
        (["list", "web1"], "list takes no VM name"),
        (["start"], "start needs a VM name"),
        (["start", "web1"], "start needs --memory MiB"),
        (["stop", "web1", "--memory", "5"], "--memory is for start"),
        (["migrate", "web1", "--on", "n2"], "--on is for start"),
        (["start", "web1", "--memory", "5", "--postcopy"], "--to and --postcopy are for migrate"),
    ],
)
def test_usage_errors_are_named(argv, problem, tmp_path, capsys):
    assert novacron(["vm", *argv, "--cluster", str(tmp_path)]) == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, field",
    [
        (["bad name", "--memory", "5"], "name"),
        (["web1", "--memory", "0"], "memory_mib"),
        (["web1", "--memory", "8", "--working-set", "9"], "working_set_mib"),
        (["web1", "--memory", "8", "--dirty-rate", "-1"], "dirty_rate"),
    ],
)
def test_an_invalid_vm_is_a_usage_error_naming_the_field(argv, field, tmp_path, capsys):
    assert novacron(["vm", "start", *argv, "--cluster", str(tmp_path)]) == 2
    assert field in capsys.readouterr().err
