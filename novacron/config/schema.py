"""The NovaCron configuration schema: one frozen pydantic model per section.

Every field has a default, so ``NovaCronConfig()`` is a complete, valid configuration and a file
only needs to name what it changes. Unknown fields are errors (``extra="forbid"``): a typo such as
``min_stream`` would otherwise be silently ignored and the default used, which is the worst kind
of configuration bug.

The models are **frozen**. A configuration is a value handed to many components (transport,
consensus, monitoring...) at start-up; none of them may change what the others see. Derive a
variant with ``cfg.model_copy(update=...)`` for a top-level change, or build one from a mapping
with :func:`novacron.config.config_from_mapping`, which validates it.

Choices (log levels, algorithms, protocols) are ``Literal`` types matched case-insensitively, so
``log_level: INFO`` works and is stored as ``"info"``. Durations are float seconds (see
:mod:`novacron.config.durations`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from novacron.config.durations import Duration, format_duration


def _casefold(value: object) -> object:
    """Let choices be written in any case (``INFO``, ``Raft``); other types pass through."""
    return value.strip().lower() if isinstance(value, str) else value


def _casefold_mode(value: object) -> object:
    """Like :func:`_casefold`, and read ``auto`` as ``""``: both mean "detect the mode"."""
    value = _casefold(value)
    return "" if value == "auto" else value


LogLevel = Annotated[Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_casefold)]
DWCPMode = Annotated[Literal["", "datacenter", "internet", "hybrid"], BeforeValidator(_casefold_mode)]
CongestionAlgo = Annotated[Literal["cubic", "bbr", "adaptive"], BeforeValidator(_casefold)]
CompressionAlgo = Annotated[Literal["zstd", "lz4", "none"], BeforeValidator(_casefold)]
ConsensusProtocol = Annotated[Literal["auto", "raft", "pbft", "gossip"], BeforeValidator(_casefold)]
StorageBackend = Annotated[Literal["sqlite", "postgres", "redis"], BeforeValidator(_casefold)]
AuthMethod = Annotated[Literal["mtls", "token", "none"], BeforeValidator(_casefold)]

Port = Annotated[int, Field(ge=1, le=65535)]
Count = Annotated[int, Field(ge=1)]
NonEmptyStr = Annotated[str, Field(min_length=1)]

#: lz4.frame compression levels stop at 16 (``lz4.frame.COMPRESSIONLEVEL_MAX``); zstd goes to 22
LZ4_MAX_LEVEL = 16


class Section(BaseModel):
    """Base of every section: frozen, no unknown fields, and ``name:`` alone means defaults.

    A YAML file whose sub-section has every key commented out (``transport:`` with nothing
    under it) loads that sub-section as ``null``; treating it as "all defaults" is what the
    author meant, so nested sections accept ``None`` as ``{}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_subsection_means_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        nested = {name for name, info in cls.model_fields.items() if section_type(info)}
        return {key: {} if key in nested and value is None else value for key, value in data.items()}


class SystemConfig(Section):
    """The node process itself."""

    node_id: NonEmptyStr = Field("novacron-node-1", description="unique id of this node")
    data_dir: NonEmptyStr = Field("/var/lib/novacron", description="durable state lives here")
    log_level: LogLevel = Field("info", description="minimum level that is logged")
    max_concurrency: Count = Field(1000, description="upper bound on concurrent tasks")
    health_check_port: Port = Field(8080, description="HTTP port answering health checks (GET /healthz)")
    shutdown_timeout: Duration = Field(30.0, description="grace period before a forced stop")


class TransportConfig(Section):
    """AMST: adaptive multi-stream transport for bulk transfers (VM memory and disk)."""

    min_streams: Count = Field(4, description="parallel streams a transfer starts with")
    max_streams: Count = Field(256, description="parallel streams a transfer may grow to")
    stream_timeout: Duration = Field(60.0, description="idle time after which a stream is dropped")
    enable_rdma: bool = Field(False, description="use RDMA when a device exists (else TCP)")
    congestion_algo: CongestionAlgo = Field("cubic", description="per-stream congestion control")

    @model_validator(mode="after")
    def _stream_range(self) -> TransportConfig:
        if self.max_streams < self.min_streams:
            raise ValueError(
                f"max_streams ({self.max_streams}) must be greater than or equal to "
                f"min_streams ({self.min_streams})"
            )
        return self


class CompressionConfig(Section):
    """HDE: hierarchical delta encoding and compression of transferred state."""

    algorithm: CompressionAlgo = Field("zstd", description="compressor for transferred pages")
    level: int = Field(3, ge=0, le=22, description="compression level (zstd 0-22, lz4 0-16)")
    enable_delta: bool = Field(True, description="send deltas against known baselines")
    enable_ml_model: bool = Field(False, description="let a learned model pick the algorithm")

    @model_validator(mode="after")
    def _level_fits_algorithm(self) -> CompressionConfig:
        # The schema allows 0-22 (zstd's range); lz4.frame would reject 17-22 only at run time.
        if self.algorithm == "lz4" and self.level > LZ4_MAX_LEVEL:
            raise ValueError(
                f"level {self.level} is too high for lz4: lz4.frame accepts levels "
                f"0-{LZ4_MAX_LEVEL} (levels up to 22 are for zstd)"
            )
        return self


class ConsensusConfig(Section):
    """ACP: adaptive consensus (Raft in trusted sites, PBFT where nodes may be Byzantine)."""

    protocol: ConsensusProtocol = Field(
        "raft", description="consensus protocol; auto: Raft in datacenter mode, PBFT otherwise"
    )
    heartbeat_interval: Duration = Field(0.5, description="leader heartbeat period")
    election_timeout: Duration = Field(5.0, description="follower wait before an election")
    byzantine_tolerance: bool = Field(False, description="tolerate Byzantine (malicious) nodes")

    @model_validator(mode="after")
    def _election_outlasts_heartbeats(self) -> ConsensusConfig:
        # A follower must hear several heartbeats per election timeout, or one late heartbeat
        # starts an election and the cluster churns leaders instead of doing work.
        if self.election_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                f"election_timeout ({format_duration(self.election_timeout)}) must be at least "
                f"2 x heartbeat_interval ({format_duration(self.heartbeat_interval)}), i.e. "
                f">= {format_duration(2 * self.heartbeat_interval)}: followers need several "
                "heartbeats per election timeout"
            )
        return self


class DWCPConfig(Section):
    """DWCP v3: mode detection, feature rollout, and the per-protocol sections."""

    enable_auto_detection: bool = Field(True, description="detect datacenter/internet/hybrid")
    forced_mode: DWCPMode = Field("", description='"" (auto) or the mode to use regardless')
    detection_interval: Duration = Field(30.0, description="how often the mode is re-detected")
    v3_rollout_percentage: int = Field(0, ge=0, le=100, description="share of traffic on v3")
    enable_v3_transport: bool = Field(False, description="AMST multi-stream transport")
    enable_v3_compression: bool = Field(False, description="HDE delta encoding")
    enable_v3_prediction: bool = Field(False, description="PBA bandwidth prediction")
    enable_v3_state_sync: bool = Field(False, description="ASS state synchronisation")
    enable_v3_consensus: bool = Field(False, description="ACP adaptive consensus")
    enable_v3_placement: bool = Field(False, description="ITP task placement")
    transport: TransportConfig = Field(default_factory=TransportConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    consensus: ConsensusConfig = Field(default_factory=ConsensusConfig)


class NetworkConfig(Section):
    """The node's control-plane listener."""

    listen_address: NonEmptyStr = Field("0.0.0.0", description="address to listen on")
    bind_port: Port = Field(9090, description="port for peer connections")
    max_connections: Count = Field(10000, description="upper bound on open connections")
    enable_tls: bool = Field(True, description="encrypt peer connections with TLS")


class StorageConfig(Section):
    """Where cluster metadata is kept."""

    backend: StorageBackend = Field("sqlite", description="metadata store")
    max_connections: Count = Field(100, description="connection pool size")
    enable_cache: bool = Field(True, description="cache reads in memory")


class MonitoringConfig(Section):
    """Metrics and tracing."""

    enable_metrics: bool = Field(True, description="serve Prometheus metrics (GET /metrics)")
    metrics_port: Port = Field(
        9091, description="port of the metrics endpoint (may be the health check's: one server)"
    )
    enable_tracing: bool = Field(False, description="emit traces")


class SecurityConfig(Section):
    """Authentication between nodes and encryption at rest."""

    enable_auth: bool = Field(True, description="authenticate peers")
    auth_method: AuthMethod = Field("mtls", description="how peers authenticate")
    enable_encryption: bool = Field(True, description="encrypt stored state (needs encryption_key_file)")
    encryption_key_file: str = Field(
        "", description="32-byte key (raw or hex) encrypting stored state; keep it off the data disk"
    )


class HostingConfig(Section):
    """VM hosting (``novacron.hosting``): the VMs this node runs and the ones migrated to it."""

    enable: bool = Field(False, description="run VMs here (novacron vm) and accept migrated ones")
    memory_mib: Count = Field(4096, description="guest memory this node may give its VMs, in MiB")


class NovaCronConfig(Section):
    """A node's whole configuration. ``NovaCronConfig()`` is the default configuration."""

    system: SystemConfig = Field(default_factory=SystemConfig)
    dwcp: DWCPConfig = Field(default_factory=DWCPConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    hosting: HostingConfig = Field(default_factory=HostingConfig)

    @model_validator(mode="after")
    def _listeners_on_distinct_ports(self) -> NovaCronConfig:
        # All listeners live in one process on one host: a shared port fails at bind time,
        # long after the config was "valid". Say so while the file is still open in the editor.
        # The two HTTP endpoints may share theirs: one server then answers both.
        listeners = {
            "system.health_check_port": self.system.health_check_port,
            "network.bind_port": self.network.bind_port,
        }
        metrics_port = self.monitoring.metrics_port
        if self.monitoring.enable_metrics and metrics_port != self.system.health_check_port:
            listeners["monitoring.metrics_port"] = metrics_port
        owner: dict[int, str] = {}
        for name, port in listeners.items():
            if port in owner:
                raise ValueError(
                    f"{owner[port]} and {name} are both {port}: each listener needs its own port"
                )
            owner[port] = name
        return self


# --- schema introspection, shared by the environment overrides and the error messages ---------


def section_type(info: FieldInfo) -> type[Section] | None:
    """The section model a field holds, or ``None`` for a plain value field."""
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    return None


def choices(info: FieldInfo) -> tuple[Any, ...]:
    """The allowed values of a ``Literal`` field (empty for other fields)."""
    annotation = info.annotation
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return ()


def section_at(path: tuple[str, ...]) -> type[Section] | None:
    """The section model at ``path`` (``()`` is the top level), or ``None`` if there is none."""
    model: type[Section] = NovaCronConfig
    for name in path:
        info = model.model_fields.get(name)
        sub = section_type(info) if info is not None else None
        if sub is None:
            return None
        model = sub
    return model


def field_at(path: tuple[str, ...]) -> FieldInfo | None:
    """The field at ``path`` (e.g. ``("dwcp", "transport", "max_streams")``), or ``None``."""
    if not path:
        return None
    model = section_at(path[:-1])
    return model.model_fields.get(path[-1]) if model is not None else None
