"""``novacron dst`` arguments: seeds, fault kinds and bad input."""

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
