"""What a real node does with each setting: the schema accepts more than the node implements.

The schema is the DWCP v3 configuration as the original NovaCron design wrote it, so that existing
files load; some of its settings have no implementation here yet. A setting silently ignored is
the worst kind of configuration bug (an operator who set ``storage.backend: postgres`` would back
up the wrong database), so :func:`check_support` sorts every setting a configuration *asks* for
and the node cannot give into:

* **refused**: an explicit choice of something that does not exist here (a storage backend, an
  authentication method): ``novacron node`` will not start, and says which field;
* **warnings**: a security property the configuration claims and the node does not provide (state
  encrypted at rest, peers authenticated without TLS): the node starts, and says so loudly, since
  these are the defaults and refusing them would refuse every default configuration;
* **ignored**: tuning knobs and feature flags the node does not read, when set to anything but
  their defaults; listed once, at info level.

``novacron config validate`` prints the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import NovaCronConfig

#: settings the real node reads nowhere, with the reason an operator should know
IGNORED = {
    "system.max_concurrency": "the event loop runs as many tasks as the protocols spawn",
    "storage.max_connections": "the node keeps one SQLite connection",
    "storage.enable_cache": "SQLite's own page cache is the only cache",
    "monitoring.enable_tracing": "no traces are emitted, /metrics and the logs are what there is",
    "dwcp.v3_rollout_percentage": "every message uses DWCP v3, there is no v1 path to roll out from",
    "dwcp.enable_v3_transport": "AMST carries every bulk transfer",
    "dwcp.enable_v3_compression": "HDE is chosen per migration, by its MigrationSettings",
    "dwcp.enable_v3_prediction": "PBA is chosen per migration and per allocated transfer",
    "dwcp.enable_v3_placement": "VMs are placed by the client, novacron vm start",
}


@dataclass(frozen=True)
class SupportReport:
    refused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return (
            [f"refused: {r}" for r in self.refused]
            + [f"warning: {w}" for w in self.warnings]
            + [f"ignored: {i}" for i in self.ignored]
        )


def check_support(config: NovaCronConfig) -> SupportReport:
    """What ``config`` asks of a real node that the node cannot give (module docstring)."""
    report = SupportReport()
    storage, security = config.storage, config.security
    if storage.backend != "sqlite":
        report.refused.append(
            f"storage.backend: {storage.backend} is not implemented; the node stores its state in SQLite "
            "(set storage.backend: sqlite)"
        )
    if security.enable_auth and security.auth_method == "token":
        report.refused.append(
            "security.auth_method: token is not implemented; peers authenticate with mTLS "
            "(network.enable_tls: true) or not at all (security.enable_auth: false)"
        )
    if security.enable_auth and security.auth_method != "none" and not config.network.enable_tls:
        report.warnings.append(
            "security.enable_auth is on but network.enable_tls is off: peers are NOT authenticated "
            "(mTLS is the only authentication; turn TLS on, or set security.enable_auth: false to say so)"
        )
    if security.enable_encryption and not security.encryption_key_file:
        report.warnings.append(
            "security.enable_encryption: state at rest is NOT encrypted: no security.encryption_key_file "
            "(make one with `head -c 32 /dev/urandom > FILE`, away from system.data_dir), or set "
            "security.enable_encryption: false"
        )
    if security.encryption_key_file and not security.enable_encryption:
        report.ignored.append(
            f"security.encryption_key_file: {security.encryption_key_file!r} has no effect: "
            "security.enable_encryption is off"
        )
    defaults = NovaCronConfig()
    for path, why in IGNORED.items():  # a default asks for nothing (the feature flags are off)
        if _get(config, path) != _get(defaults, path):
            report.ignored.append(f"{path}: {_get(config, path)!r} has no effect: {why}")
    return report


def _get(config: NovaCronConfig, path: str) -> object:
    value: object = config
    for name in path.split("."):
        value = getattr(value, name)
    return value
