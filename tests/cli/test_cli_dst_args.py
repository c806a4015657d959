"""``novacron dst`` arguments: seeds, fault kinds and bad input."""

import sys

import pytest

from novacron.cli import build_parser
from novacron.cli.dst_cmd import build_config


def parse(*argv):
    return build_parser().parse_args(["dst", *argv])


def test_seed_ranges_and_single_seeds():
    assert parse("--seeds", "3:7").seeds == range(3, 7)
    assert parse("--seeds", "12").seeds == range(12, 13)


@pytest.mark.parametrize("bad", ["7:3", "a:b", "-1:4", "5:5"])
def test_bad_seed_ranges_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse("--seeds", bad)
    assert exit_.value.code == 2
    assert "seeds" in capsys.readouterr().err


def test_faults_and_byzantine_kinds_become_the_campaign_config():
    config = build_config(parse("--protocol", "pbft", "--faults", "crash,loss", "--byzantine", "none"))
    assert config.protocol == "pbft" and config.faults == ("crash", "loss") and config.byzantine == ()


def test_an_unknown_fault_kind_is_named():
    with pytest.raises(ValueError, match="meteor"):
        build_config(parse("--faults", "crash,meteor"))


def test_the_replay_command_round_trips_to_the_same_config():
    argv = ["--protocol", "raft", "--faults", "partition,crash", "--broken", "vote-any-log", "--clients", "2"]
    config = build_config(parse(*argv))
    replay = config.replay_command(41).split()
    assert replay[:2] == ["novacron", "dst"] and "41:42" in replay
    again = build_config(parse(*replay[2:]))
    assert again == config


def test_workers_must_be_a_positive_count(capsys):
    assert parse("--workers", "2").workers == 2
    assert parse().workers is None  # one per core
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            parse("--workers", bad)
        assert "--workers" in capsys.readouterr().err


def test_ray_without_the_extra_is_a_usage_error_that_says_how_to_install_it(monkeypatch, capsys):
    from novacron.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["dst", "--seeds", "0:2", "--ray", "local", "--no-progress"]) == 2
    assert "novacron[distributed]" in capsys.readouterr().err


def test_seeds_run_side_by_side_from_the_command_line(capsys):
    from novacron.cli import main

    assert main(["dst", "--seeds", "0:4", "--workers", "2", "--no-progress"]) == 0
    assert "raft: 4/4 seeds passed (0 failed)" in capsys.readouterr().out


def test_an_ass_campaign_from_the_command_line(capsys):
    from novacron.cli import main

    assert main(["dst", "--protocol", "ass", "--seeds", "0:3", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "ass: 3/3 seeds passed (0 failed)" in out and "acknowledged" in out


def test_a_vm_campaign_from_the_command_line(capsys):
    from novacron.cli import main

    assert main(["dst", "--protocol", "vm", "--seeds", "0:3", "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "vm: 3/3 seeds passed (0 failed)" in out and "migrations" in out
