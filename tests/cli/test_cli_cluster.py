"""``novacron cluster`` and ``novacron kv``: a PBFT cluster of real processes serves the
command-line client, and bad requests are refused with the reason."""

import pytest

from novacron.cli import main as novacron


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
        assert capsys.readouterr().out.count("running") == 4
    finally:
        novacron(["cluster", "down", "--dir", directory, "--grace", "5"])
    novacron(["cluster", "status", "--dir", directory])
    assert capsys.readouterr().out.count("stopped") >= 4


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
