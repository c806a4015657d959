"""NovaCron configuration: schema, loading, environment overrides, shipped examples.

Typical use::

    from novacron.config import load_config
    cfg = load_config("node.yaml")           # defaults < file < NOVACRON_* environment
    cfg.dwcp.consensus.heartbeat_interval    # 0.05 (float seconds, written "50ms" in the file)

Everything that can be wrong with a configuration raises :class:`ConfigError`, a ``ValueError``
whose message has one line per problem, naming the field path and the file or variable.
"""

from novacron.config.durations import Duration, format_duration, parse_duration
from novacron.config.environment import ENV_PREFIX, SHORT_NAMES, EnvOverride, env_overrides
from novacron.config.errors import ConfigError
from novacron.config.loading import (
    config_from_mapping,
    dump_yaml,
    example_names,
    example_text,
    load_config,
    load_example,
    parse_yaml,
)
from novacron.config.schema import (
    CompressionConfig,
    ConsensusConfig,
    DWCPConfig,
    HostingConfig,
    MonitoringConfig,
    NetworkConfig,
    NovaCronConfig,
    SecurityConfig,
    StorageConfig,
    SystemConfig,
    TransportConfig,
)

__all__ = [
    "ENV_PREFIX",
    "SHORT_NAMES",
    "CompressionConfig",
    "ConfigError",
    "ConsensusConfig",
    "DWCPConfig",
    "Duration",
    "EnvOverride",
    "MonitoringConfig",
    "NetworkConfig",
    "NovaCronConfig",
    "HostingConfig",
    "SecurityConfig",
    "StorageConfig",
    "SystemConfig",
    "TransportConfig",
    "config_from_mapping",
    "dump_yaml",
    "env_overrides",
    "example_names",
    "example_text",
    "format_duration",
    "load_config",
    "load_example",
    "parse_duration",
    "parse_yaml",
]
