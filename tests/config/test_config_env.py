"""Environment overrides: the four short names, the ``__`` form, precedence, and bad variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from novacron.config import ConfigError, NovaCronConfig, config_from_mapping, load_config


def from_env(env: dict[str, str], data: dict | None = None) -> NovaCronConfig:
    return config_from_mapping(data or {}, env=env)


def env_error(env: dict[str, str], data: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        from_env(env, data)
    return str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "path", "expected"),
    [
        ("NOVACRON_NODE_ID", "node-42", "system.node_id", "node-42"),
        ("NOVACRON_DATA_DIR", "/srv/novacron", "system.data_dir", "/srv/novacron"),
        ("NOVACRON_LOG_LEVEL", "DEBUG", "system.log_level", "debug"),
        ("NOVACRON_DWCP_MODE", "internet", "dwcp.forced_mode", "internet"),
        ("NOVACRON_DWCP_MODE", "", "dwcp.forced_mode", ""),
        ("NOVACRON_DWCP__TRANSPORT__MAX_STREAMS", "64", "dwcp.transport.max_streams", 64),
        ("NOVACRON_NETWORK__ENABLE_TLS", "false", "network.enable_tls", False),
        (
            "NOVACRON_DWCP__CONSENSUS__ELECTION_TIMEOUT",
            "10s",
            "dwcp.consensus.election_timeout",
            10.0,
        ),
        (
            "NOVACRON_DWCP__CONSENSUS__HEARTBEAT_INTERVAL",
            "0.25",
            "dwcp.consensus.heartbeat_interval",
            0.25,
        ),
        ("NOVACRON_DWCP__V3_ROLLOUT_PERCENTAGE", "25", "dwcp.v3_rollout_percentage", 25),
        ("NOVACRON_SYSTEM__NODE_ID", "007", "system.node_id", "007"),  # text stays text
        ("NOVACRON_STORAGE__BACKEND", "Redis", "storage.backend", "redis"),
        ("NOVACRON_DWCP__COMPRESSION__ALGORITHM", "none", "dwcp.compression.algorithm", "none"),
        ("novacron_dwcp__transport__enable_rdma", "true", "dwcp.transport.enable_rdma", True),
        ("Novacron_Node_Id", "mixed-case", "system.node_id", "mixed-case"),
    ],
)
def test_variables_set_their_field(variable: str, value: str, path: str, expected: object) -> None:
    config: object = from_env({variable: value})
    for key in path.split("."):
        config = getattr(config, key)
    assert config == expected


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(
        "system:\n  node_id: from-file\n  log_level: warning\ndwcp:\n  transport:\n    max_streams: 32\n",
        encoding="utf-8",
    )
    config = load_config(
        path, env={"NOVACRON_NODE_ID": "from-env", "NOVACRON_DWCP__TRANSPORT__MAX_STREAMS": "8"}
    )
    assert config.system.node_id == "from-env"
    assert config.dwcp.transport.max_streams == 8
    assert config.system.log_level == "warning"  # not overridden: the file's value stands


def test_the_environment_is_read_when_no_env_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOVACRON_NODE_ID", "from-os-environ")
    assert load_config().system.node_id == "from-os-environ"


def test_unrelated_novacron_variables_are_ignored() -> None:
    config = from_env({"NOVACRON_SEED": "7", "NOVACRON_RESULTS": "x", "PATH": "/bin"})
    assert config == NovaCronConfig()


def test_overrides_fill_in_sections_the_file_left_empty() -> None:
    config = from_env({"NOVACRON_DWCP__TRANSPORT__MIN_STREAMS": "2"}, {"dwcp": {"transport": None}})
    assert config.dwcp.transport.min_streams == 2


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (
            "NOVACRON_DWCP__TRANSPORT__MAX_STREAM",
            "NOVACRON_DWCP__TRANSPORT__MAX_STREAM: unknown field 'max_stream' in dwcp.transport"
            " (did you mean 'max_streams'?",
        ),
        ("NOVACRON_NETWRK__ENABLE_TLS", "NOVACRON_NETWRK__ENABLE_TLS: unknown section 'netwrk'"),
        (
            "NOVACRON_DWCP__TRANSPORT",
            "NOVACRON_DWCP__TRANSPORT: dwcp.transport is a section; set one of its fields",
        ),
        (
            "NOVACRON_SYSTEM__NODE_ID__X",
            "NOVACRON_SYSTEM__NODE_ID__X: system.node_id is a field, not a section",
        ),
        ("NOVACRON_SYSTEM____NODE_ID", "NOVACRON_SYSTEM____NODE_ID: malformed name"),
    ],
)
def test_a_bad_variable_is_an_error_naming_it(variable: str, expected: str) -> None:
    assert expected in env_error({variable: "1"})


def test_every_bad_variable_is_reported_at_once() -> None:
    message = env_error({"NOVACRON_A__B": "1", "NOVACRON_C__D": "2"})
    allowed = "system, dwcp, network, storage, monitoring, security, hosting"
    assert message.splitlines() == [
        f"NOVACRON_A__B: unknown section 'a' (allowed: {allowed})",
        f"NOVACRON_C__D: unknown section 'c' (allowed: {allowed})",
    ]


def test_two_variables_for_one_field_are_an_error() -> None:
    message = env_error({"NOVACRON_LOG_LEVEL": "debug", "NOVACRON_SYSTEM__LOG_LEVEL": "error"})
    assert "system.log_level" in message
    assert "NOVACRON_LOG_LEVEL" in message
    assert "NOVACRON_SYSTEM__LOG_LEVEL" in message


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "NOVACRON_DWCP__TRANSPORT__MAX_STREAMS",
            "many",
            "dwcp.transport.max_streams: must be an integer "
            "(got 'many' from NOVACRON_DWCP__TRANSPORT__MAX_STREAMS)",
        ),
        (
            "NOVACRON_DWCP_MODE",
            "lan",
            'dwcp.forced_mode: must be one of "", datacenter, internet, hybrid '
            "(got 'lan' from NOVACRON_DWCP_MODE)",
        ),
        (
            "NOVACRON_MONITORING__METRICS_PORT",
            "",
            "monitoring.metrics_port: must be an integer (got '' from NOVACRON_MONITORING__METRICS_PORT)",
        ),
    ],
)
def test_an_invalid_value_names_the_variable_not_the_file(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("system: {node_id: n1}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={variable: value})
    assert str(caught.value) == expected
