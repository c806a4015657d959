"""Loading YAML files, the shipped examples, and dumping a config back to YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from novacron.config import (
    ConfigError,
    NovaCronConfig,
    config_from_mapping,
    dump_yaml,
    example_names,
    example_text,
    load_config,
    load_example,
)


def write(tmp_path: Path, text: str, name: str = "node.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return caught.value


def test_no_path_gives_the_defaults() -> None:
    assert load_config(env={}) == NovaCronConfig()


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n", "null\n"])
def test_an_empty_file_gives_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), env={}) == NovaCronConfig()


def test_a_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
system:
  node_id: n7
dwcp:
  transport:
    max_streams: 32
    stream_timeout: 90s
""",
    )
    config = load_config(path, env={})
    assert config.system.node_id == "n7"
    assert config.dwcp.transport.max_streams == 32
    assert config.dwcp.transport.stream_timeout == 90.0
    assert config.dwcp.transport.min_streams == 4
    assert config.network == NovaCronConfig().network


def test_str_and_path_arguments_are_both_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "system: {node_id: n1}\n")
    assert load_config(str(path), env={}) == load_config(path, env={})


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "system:\n  node_id: n1\n dwcp: [\n", name="broken.yaml")
    message = str(load_error(path))
    assert message.startswith(f"{path}:3:")
    assert "invalid YAML" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- system\n- dwcp\n", "a list"), ("just text\n", "the value 'just text'"), ("42\n", "42")],
)
def test_a_non_mapping_top_level_is_an_error_naming_the_file(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    message = str(load_error(path))
    assert message.startswith(f"{path}:1: the top level must be a mapping of sections")
    assert kind in message


def test_duplicate_keys_are_an_error_not_a_silent_override(tmp_path: Path) -> None:
    path = write(tmp_path, "dwcp:\n  transport:\n    max_streams: 8\n    max_streams: 16\n")
    message = str(load_error(path))
    assert f"{path}:4:" in message
    assert "duplicate key 'max_streams' (first defined on line 3)" in message


def test_yaml_merge_keys_are_not_mistaken_for_duplicates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dwcp:\n"
        "  transport: &wide {min_streams: 8, max_streams: 64}\n"
        "  compression: {level: 5}\n"
        "network:\n"
        "  <<: {bind_port: 9100}\n"
        "  <<: {max_connections: 50}\n",
    )
    config = load_config(path, env={})
    assert config.dwcp.transport.min_streams == 8
    assert config.network.bind_port == 9100


def test_more_than_one_document_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "system: {}\n---\nnetwork: {}\n")
    assert "expected a single document" in str(load_error(path))


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    error = load_error(path)
    assert str(error) == f"{path}: cannot read: No such file or directory"
    assert error.source == str(path)


def test_validation_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "dwcp:\n  transport:\n    congestion_algo: reno\n")
    error = load_error(path)
    assert str(error) == (
        f"{path}: dwcp.transport.congestion_algo: must be one of cubic, bbr, adaptive (got 'reno')"
    )
    assert error.errors[0]["type"] == "literal_error"


def test_config_from_mapping_does_not_modify_its_input() -> None:
    data = {"dwcp": {"transport": None}}
    config_from_mapping(data, env={"NOVACRON_DWCP__TRANSPORT__MAX_STREAMS": "8"})
    assert data == {"dwcp": {"transport": None}}


# --- dump_yaml -----------------------------------------------------------------------------


def test_dump_writes_durations_in_human_form() -> None:
    dumped = yaml.safe_load(dump_yaml(NovaCronConfig()))
    assert dumped["system"]["shutdown_timeout"] == "30s"
    assert dumped["dwcp"]["consensus"]["heartbeat_interval"] == "500ms"
    assert dumped["dwcp"]["consensus"]["election_timeout"] == "5s"
    assert dumped["dwcp"]["transport"]["stream_timeout"] == "1m"


def test_dump_keeps_schema_order() -> None:
    assert list(yaml.safe_load(dump_yaml(NovaCronConfig()))) == [
        "system",
        "dwcp",
        "network",
        "storage",
        "monitoring",
        "security",
        "hosting",
    ]


def test_dump_round_trips_tricky_values(tmp_path: Path) -> None:
    config = config_from_mapping(
        {
            "system": {"node_id": "007", "data_dir": "/data/nova cron", "shutdown_timeout": 1.5},
            "dwcp": {"consensus": {"heartbeat_interval": "0.0001234", "election_timeout": "1h"}},
            "network": {"listen_address": "::"},
            "security": {"auth_method": "none"},
        },
        env={},
    )
    text = dump_yaml(config)
    assert load_config(write(tmp_path, text), env={}) == config
    assert dump_yaml(load_config(write(tmp_path, text), env={})) == text


# --- shipped examples ----------------------------------------------------------------------


def test_the_three_examples_are_shipped() -> None:
    assert example_names() == ["datacenter", "hybrid", "internet"]


@pytest.mark.parametrize("name", ["datacenter", "internet", "hybrid"])
def test_each_example_loads_and_round_trips(name: str, tmp_path: Path) -> None:
    config = load_example(name, env={})
    text = dump_yaml(config)
    assert load_config(write(tmp_path, text), env={}) == config
    assert dump_yaml(config_from_mapping(yaml.safe_load(text), env={})) == text


@pytest.mark.parametrize("name", ["datacenter", "internet", "hybrid"])
def test_each_example_is_complete_and_commented(name: str) -> None:
    """Complete: every field is written out, so the file documents the whole schema."""
    text = example_text(name)
    assert text.startswith("# ")
    written = yaml.safe_load(text)
    assert set(written) == set(NovaCronConfig.model_fields)
    defaults = NovaCronConfig().model_dump(mode="json")
    for section, fields in defaults.items():
        assert set(written[section]) == set(fields), section
    assert set(written["dwcp"]["transport"]) == set(defaults["dwcp"]["transport"])
    assert set(written["dwcp"]["compression"]) == set(defaults["dwcp"]["compression"])
    assert set(written["dwcp"]["consensus"]) == set(defaults["dwcp"]["consensus"])


def test_examples_fit_their_networks() -> None:
    datacenter = load_example("datacenter", env={})
    internet = load_example("internet", env={})
    hybrid = load_example("hybrid", env={})

    assert datacenter.dwcp.forced_mode == "datacenter"
    assert datacenter.dwcp.transport.max_streams > hybrid.dwcp.transport.max_streams
    assert datacenter.dwcp.consensus.heartbeat_interval == 0.05
    assert datacenter.dwcp.consensus.election_timeout == 0.5

    assert internet.dwcp.forced_mode == "internet"
    assert 4 <= internet.dwcp.transport.min_streams <= internet.dwcp.transport.max_streams <= 16
    assert internet.dwcp.transport.congestion_algo == "bbr"
    assert internet.dwcp.compression.algorithm == "zstd"
    assert internet.dwcp.compression.level > hybrid.dwcp.compression.level
    assert internet.dwcp.consensus.protocol == "pbft"
    assert internet.dwcp.consensus.byzantine_tolerance

    assert hybrid.dwcp.forced_mode == ""
    assert hybrid.dwcp.enable_auto_detection
    assert (
        datacenter.dwcp.consensus.election_timeout
        < hybrid.dwcp.consensus.election_timeout
        < internet.dwcp.consensus.election_timeout
    )


def test_examples_take_environment_overrides() -> None:
    config = load_example("internet", env={"NOVACRON_NODE_ID": "edge-ap-south-2"})
    assert config.system.node_id == "edge-ap-south-2"


def test_an_unknown_example_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        load_example("lan", env={})
    assert str(caught.value) == "unknown example 'lan' (available: datacenter, hybrid, internet)"
