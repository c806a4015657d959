"""The schema: every default, every choice and range, the cross-field rules, typo detection."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from novacron.config import (
    ConfigError,
    NovaCronConfig,
    TransportConfig,
    config_from_mapping,
)

#: the documented default configuration, written out by hand (durations in seconds)
EXPECTED_DEFAULTS: dict[str, Any] = {
    "system": {
        "node_id": "novacron-node-1",
        "data_dir": "/var/lib/novacron",
        "log_level": "info",
        "max_concurrency": 1000,
        "health_check_port": 8080,
        "shutdown_timeout": 30.0,
    },
    "dwcp": {
        "enable_auto_detection": True,
        "forced_mode": "",
        "detection_interval": 30.0,
        "v3_rollout_percentage": 0,
        "enable_v3_transport": False,
        "enable_v3_compression": False,
        "enable_v3_prediction": False,
        "enable_v3_state_sync": False,
        "enable_v3_consensus": False,
        "enable_v3_placement": False,
        "transport": {
            "min_streams": 4,
            "max_streams": 256,
            "stream_timeout": 60.0,
            "enable_rdma": False,
            "congestion_algo": "cubic",
        },
        "compression": {
            "algorithm": "zstd",
            "level": 3,
            "enable_delta": True,
            "enable_ml_model": False,
        },
        "consensus": {
            "protocol": "raft",
            "heartbeat_interval": 0.5,
            "election_timeout": 5.0,
            "byzantine_tolerance": False,
        },
    },
    "network": {
        "listen_address": "0.0.0.0",
        "bind_port": 9090,
        "max_connections": 10000,
        "enable_tls": True,
    },
    "storage": {"backend": "sqlite", "max_connections": 100, "enable_cache": True},
    "monitoring": {"enable_metrics": True, "metrics_port": 9091, "enable_tracing": False},
    "security": {
        "enable_auth": True,
        "auth_method": "mtls",
        "enable_encryption": True,
        "encryption_key_file": "",
    },
    "hosting": {"enable": False, "memory_mib": 4096},
}


def build(data: dict[str, Any]) -> NovaCronConfig:
    return config_from_mapping(data, env={})


def problems_for(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        build(data)
    return str(caught.value)


def nested(path: str, value: object) -> dict[str, Any]:
    """``nested("a.b.c", 1) == {"a": {"b": {"c": 1}}}``."""
    data: Any = value
    for key in reversed(path.split(".")):
        data = {key: data}
    return data


def test_defaults_match_the_documented_schema_exactly() -> None:
    assert NovaCronConfig().model_dump() == EXPECTED_DEFAULTS


def test_an_empty_mapping_is_the_default_config() -> None:
    assert build({}) == NovaCronConfig()


def test_config_is_frozen() -> None:
    config = NovaCronConfig()
    with pytest.raises(ValidationError):
        config.dwcp.transport.max_streams = 1  # type: ignore[misc]


def test_durations_in_the_schema_are_float_seconds() -> None:
    config = build(nested("dwcp.consensus", {"heartbeat_interval": "50ms", "election_timeout": 1}))
    assert config.dwcp.consensus.heartbeat_interval == 0.05
    assert config.dwcp.consensus.election_timeout == 1.0


@pytest.mark.parametrize(
    ("path", "bad", "allowed"),
    [
        ("system.log_level", "verbose", "debug, info, warning, error, critical"),
        ("dwcp.forced_mode", "lan", '"", datacenter, internet, hybrid'),
        ("dwcp.transport.congestion_algo", "reno", "cubic, bbr, adaptive"),
        ("dwcp.compression.algorithm", "gzip", "zstd, lz4, none"),
        ("dwcp.consensus.protocol", "paxos", "auto, raft, pbft, gossip"),
        ("storage.backend", "mysql", "sqlite, postgres, redis"),
        ("security.auth_method", "password", "mtls, token, none"),
    ],
)
def test_each_choice_rejects_a_bad_value_naming_path_and_choices(path: str, bad: str, allowed: str) -> None:
    message = problems_for(nested(path, bad))
    assert f"{path}: must be one of {allowed} (got '{bad}')" in message


def test_the_congestion_algo_message_reads_as_documented() -> None:
    message = problems_for(nested("dwcp.transport.congestion_algo", "reno"))
    assert message == "dwcp.transport.congestion_algo: must be one of cubic, bbr, adaptive (got 'reno')"


@pytest.mark.parametrize(
    ("path", "written", "stored"),
    [
        ("system.log_level", "DEBUG", "debug"),
        ("dwcp.transport.congestion_algo", "BBR", "bbr"),
        ("dwcp.consensus.protocol", "Raft", "raft"),
        ("dwcp.forced_mode", "Internet", "internet"),
        ("dwcp.forced_mode", "auto", ""),
    ],
)
def test_choices_are_case_insensitive(path: str, written: str, stored: str) -> None:
    config = build(nested(path, written))
    value: Any = config
    for key in path.split("."):
        value = getattr(value, key)
    assert value == stored


@pytest.mark.parametrize(
    ("path", "bad", "expected"),
    [
        ("system.health_check_port", 0, "must be between 1 and 65535 (got 0)"),
        ("network.bind_port", 65536, "must be between 1 and 65535 (got 65536)"),
        ("monitoring.metrics_port", -1, "must be between 1 and 65535 (got -1)"),
        ("dwcp.v3_rollout_percentage", 101, "must be between 0 and 100 (got 101)"),
        ("dwcp.v3_rollout_percentage", -1, "must be between 0 and 100 (got -1)"),
        ("dwcp.compression.level", 23, "must be between 0 and 22 (got 23)"),
        ("dwcp.transport.min_streams", 0, "must be >= 1 (got 0)"),
        ("system.max_concurrency", 0, "must be >= 1 (got 0)"),
        ("network.max_connections", 0, "must be >= 1 (got 0)"),
        ("storage.max_connections", 0, "must be >= 1 (got 0)"),
        ("system.node_id", "", "must not be empty (got '')"),
        ("system.node_id", 42, "must be a string"),
        ("dwcp.transport.max_streams", "lots", "must be an integer (got 'lots')"),
        ("network.enable_tls", "maybe", "must be true or false (got 'maybe')"),
        ("dwcp", 5, "must be a mapping of fields (got 5)"),
    ],
)
def test_out_of_range_and_mistyped_values_are_rejected(path: str, bad: object, expected: str) -> None:
    assert f"{path}: {expected}" in problems_for(nested(path, bad))


@pytest.mark.parametrize(
    "path",
    [
        "system.shutdown_timeout",
        "dwcp.detection_interval",
        "dwcp.transport.stream_timeout",
        "dwcp.consensus.heartbeat_interval",
        "dwcp.consensus.election_timeout",
    ],
)
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("0s", "must be a positive duration, not zero"),
        (0, "must be a positive duration, not zero"),
        ("-1s", "must not be negative"),
        ("5 parsecs", "not a duration"),
    ],
)
def test_every_duration_field_must_be_positive(path: str, bad: object, expected: str) -> None:
    message = problems_for(nested(path, bad))
    assert f"{path}: " in message
    assert expected in message


def test_boundary_values_are_accepted() -> None:
    config = build(
        {
            "system": {"health_check_port": 1, "max_concurrency": 1},
            "network": {"bind_port": 65535},
            "dwcp": {
                "v3_rollout_percentage": 100,
                "compression": {"level": 22},
                "transport": {"min_streams": 1, "max_streams": 1},
            },
        }
    )
    assert config.network.bind_port == 65535
    assert config.dwcp.compression.level == 22


def test_max_streams_below_min_streams_names_both_fields() -> None:
    message = problems_for(nested("dwcp.transport", {"min_streams": 16, "max_streams": 8}))
    assert "dwcp.transport: max_streams (8) must be greater than or equal to min_streams (16)" in (message)


def test_transport_model_enforces_the_stream_range_directly_too() -> None:
    with pytest.raises(ValidationError, match="max_streams"):
        TransportConfig(min_streams=10, max_streams=5)


@pytest.mark.parametrize(("level", "ok"), [(0, True), (16, True), (17, False), (22, False)])
def test_lz4_levels_stop_at_16(level: int, ok: bool) -> None:
    data = nested("dwcp.compression", {"algorithm": "lz4", "level": level})
    if ok:
        assert build(data).dwcp.compression.level == level
    else:
        message = problems_for(data)
        assert f"dwcp.compression: level {level} is too high for lz4" in message
        assert "0-16" in message


def test_zstd_accepts_levels_up_to_22() -> None:
    assert build(nested("dwcp.compression.level", 22)).dwcp.compression.level == 22


@pytest.mark.parametrize(
    ("heartbeat", "election", "ok"),
    [
        ("50ms", "500ms", True),
        ("500ms", "1s", True),  # exactly 2x: the minimum
        ("500ms", "999ms", False),
        ("1s", "1s", False),
        ("1s", "500ms", False),
    ],
)
def test_election_timeout_must_be_at_least_twice_the_heartbeat(
    heartbeat: str, election: str, ok: bool
) -> None:
    data = nested("dwcp.consensus", {"heartbeat_interval": heartbeat, "election_timeout": election})
    if ok:
        build(data)
        return
    message = problems_for(data)
    assert "dwcp.consensus: election_timeout" in message
    assert "at least 2 x heartbeat_interval" in message
    assert "several heartbeats per election timeout" in message


def test_listeners_may_not_share_a_port() -> None:
    message = problems_for({"network": {"bind_port": 9091}})
    assert "network.bind_port and monitoring.metrics_port are both 9091" in message


def test_metrics_port_may_collide_when_metrics_are_off() -> None:
    config = build({"network": {"bind_port": 9091}, "monitoring": {"enable_metrics": False}})
    assert config.network.bind_port == 9091


def test_the_health_check_and_metrics_may_share_their_http_port() -> None:
    """One HTTP server then answers both (``novacron cluster up`` gives each node one port)."""
    config = build({"system": {"health_check_port": 7000}, "monitoring": {"metrics_port": 7000}})
    assert config.system.health_check_port == config.monitoring.metrics_port == 7000
    message = problems_for({"system": {"health_check_port": 7000}, "network": {"bind_port": 7000}})
    assert "system.health_check_port and network.bind_port are both 7000" in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            nested("dwcp.transport.min_stream", 3),
            "dwcp.transport.min_stream: unknown field (did you mean 'min_streams'?",
        ),
        ({"sytem": {}}, "sytem: unknown section (did you mean 'system'?"),
        (nested("security.enable_authentication", True), "security.enable_authentication: unknown"),
    ],
)
def test_unknown_fields_are_errors_naming_them(data: dict[str, Any], expected: str) -> None:
    assert expected in problems_for(data)


def test_all_problems_are_reported_one_line_each() -> None:
    error = pytest.raises(
        ConfigError,
        build,
        {
            "system": {"log_level": "loud", "health_check_port": 0},
            "dwcp": {"transport": {"congestion_algo": "reno"}},
        },
    ).value
    assert len(error.problems) == 3
    assert str(error).splitlines() == error.problems
    assert {tuple(e["loc"]) for e in error.errors} == {
        ("system", "log_level"),
        ("system", "health_check_port"),
        ("dwcp", "transport", "congestion_algo"),
    }
    assert isinstance(error.validation_error, ValidationError)
    assert isinstance(error, ValueError)


def test_an_empty_subsection_means_its_defaults() -> None:
    config = build({"dwcp": {"transport": None, "consensus": None}, "storage": None})
    assert config == NovaCronConfig()


def test_a_null_value_field_is_still_an_error() -> None:
    assert "system.node_id: must be a string" in problems_for(nested("system.node_id", None))
