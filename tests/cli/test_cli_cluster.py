"""``novacron cluster`` and ``novacron kv``: a PBFT cluster of real processes serves the
command-line client, and bad requests are refused with the reason."""

import json
from pathlib import Path
from urllib.request import ProxyHandler, build_opener

import pytest
import yaml

from novacron.cli import main as novacron
from novacron.cli.cluster_cmd import ClusterManifest, Member, _node_config
from novacron.config import config_from_mapping


def test_a_pbft_cluster_serves_put_get_and_cas(tmp_path, capsys):
    directory = str(tmp_path / "pbft")
    try:
        assert novacron(["cluster", "up", "--dir", directory, "--nodes", "4", "--protocol", "pbft"]) == 0
        assert novacron(["kv", "put", "color", "blue", "--cluster", directory]) == 0
        assert novacron(["kv", "get", "color", "--cluster", directory]) == 0
        assert capsys.readouterr().out.strip().endswith("blue")
        assert novacron(["kv", "cas", "color", "red", "green", "--cluster", directory]) == 1  # not red
        assert novacron(["kv", "cas", "color", "blue", "green", "--cluster", directory]) == 0
        assert novacron(["kv", "get", "color", "--cluster", directory]) == 0
        assert capsys.readouterr().out.strip().endswith("green")
        assert novacron(["kv", "delete", "color", "--cluster", directory]) == 0
        assert novacron(["kv", "get", "color", "--cluster", directory]) == 1  # absent
        assert novacron(["cluster", "status", "--dir", directory]) == 0
        status = capsys.readouterr().out
        assert status.count("running") == 4
        direct = build_opener(ProxyHandler({}))  # loopback: never through a proxy from the environment
        for member in ClusterManifest.load(Path(directory)).members:  # each its own /healthz
            assert f"http 127.0.0.1:{member.http_port}" in status
            with direct.open(f"http://127.0.0.1:{member.http_port}/healthz", timeout=30) as reply:
                answer = json.loads(reply.read())
            assert answer["node"] == member.id and answer["consensus"]["protocol"] == "pbft"
    finally:
        novacron(["cluster", "down", "--dir", directory, "--grace", "5"])
    novacron(["cluster", "status", "--dir", directory])
    assert capsys.readouterr().out.count("stopped") >= 4


def test_each_member_gets_an_http_port_of_its_own_for_health_and_metrics(tmp_path):
    """Nodes on one host cannot all take the default 8080 and 9091: ``cluster up`` gives each
    member one more free port (or the next from ``--base-port``), serving both routes."""
    manifest = ClusterManifest("raft", "127.0.0.1", [Member("n1", 7001, http_port=7101)])
    text = _node_config(manifest, manifest.members[0], tmp_path)
    config = config_from_mapping(yaml.safe_load(text), env={})
    assert config.system.health_check_port == config.monitoring.metrics_port == 7101
    assert config.monitoring.enable_metrics and config.network.bind_port == 7001
    assert manifest.members[0].describe("127.0.0.1") == "n1  127.0.0.1:7001  http 127.0.0.1:7101  pid 0"


def test_pbft_needs_three_f_plus_one_nodes(tmp_path, capsys):
    assert novacron(["cluster", "up", "--dir", str(tmp_path), "--nodes", "3", "--protocol", "pbft"]) == 2
    assert "3f + 1" in capsys.readouterr().err


def test_no_cluster_in_the_directory_is_named(tmp_path, capsys):
    assert novacron(["kv", "get", "k", "--cluster", str(tmp_path)]) == 2
    assert "no cluster" in capsys.readouterr().err
    assert novacron(["cluster", "down", "--dir", str(tmp_path)]) == 2


@pytest.mark.parametrize("argv", [["put", "k"], ["cas", "k", "only-one"], ["get", "k", "extra"]])
def test_the_wrong_number_of_values_is_a_usage_error(argv, tmp_path, capsys):
    assert novacron(["kv", *argv, "--cluster", str(tmp_path)]) == 2
    assert "value(s)" in capsys.readouterr().err


def test_a_clusters_members_replicate_the_state_map_to_every_replica(tmp_path, capsys):
    """``novacron state``: a put at one replica is read at the others (pushed at once in the
    cluster's datacenter mode; the loop only bounds how long that may take), a blind put stands
    beside it, a put that replaces what the replica holds resolves both. (The members' storage is
    encrypted at rest, ``--encrypt``: none of the values is on their disks in the clear.)"""
    directory = str(tmp_path / "raft")

    def state(*argv):
        return novacron(["state", *argv, "--cluster", directory])

    def values_at(replica):
        capsys.readouterr()
        state("get", "vm/1", "--replica", replica)
        return sorted(capsys.readouterr().out.split())

    try:
        assert novacron(["cluster", "up", "--dir", directory, "--nodes", "3", "--encrypt"]) == 0
        assert state("get", "vm/1") == 1  # absent
        assert state("put", "vm/1", "host-a", "--replica", "n1") == 0
        for _ in range(100):
            if values_at("n3") == ["host-a"]:
                break
        assert values_at("n3") == ["host-a"]
        assert state("put", "vm/1", "host-b", "--replica", "n2", "--blind") == 0
        for _ in range(100):
            if values_at("n1") == ["host-a", "host-b"]:
                break
        assert values_at("n1") == ["host-a", "host-b"]  # concurrent: both kept
        assert state("put", "vm/1", "host-c", "--replica", "n1") == 0  # replaces both
        capsys.readouterr()
        for _ in range(100):
            state("get", "vm/1", "--all")
            shown = capsys.readouterr().out
            if shown.count("host-c") == 3:
                break
        assert shown.splitlines() == ["n1: host-c", "n2: host-c", "n3: host-c"]
        assert state("get", "vm/1", "--replica", "n9") == 2
        assert "no replica 'n9'" in capsys.readouterr().err
    finally:
        novacron(["cluster", "down", "--dir", directory, "--grace", "5"])
    on_disk = b"".join(p.read_bytes() for p in Path(directory).glob("n*.sqlite3*"))
    assert on_disk and b"host-" not in on_disk
    assert all("storage encrypted at rest" in p.read_text() for p in Path(directory).glob("n*.log"))


def test_state_usage_errors_are_named(tmp_path, capsys):
    assert novacron(["state", "put", "k", "--cluster", str(tmp_path)]) == 2
    assert "put takes one value" in capsys.readouterr().err
    assert novacron(["state", "get", "k", "--cluster", str(tmp_path)]) == 2
    assert "no cluster in" in capsys.readouterr().err
