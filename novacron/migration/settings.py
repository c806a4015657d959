"""How a migration runs: the engine, what DWCP adds, and when to stop iterating.

Two presets matter. :meth:`MigrationSettings.qemu_defaults` is the baseline the issue names: QEMU's
pre-copy as shipped (``migration/options.c``): one connection, no compression, no XBZRLE delta,
``downtime-limit`` 300 ms, ``max-bandwidth`` 128 MiB/s, auto-converge off, and zero-page detection
on (QEMU always sends a zero page as a flag; leaving that out would flatter DWCP).
:meth:`MigrationSettings.dwcp` is DWCP v3's migration: AMST streams chosen by the network mode,
HDE (zero pages, XBZRLE deltas of re-sent pages against a cache, adaptive compression), PBA's
RobustMPC-style prediction of the bandwidth to decide when to stop, auto-converge on, no
bandwidth cap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

QEMU_MAX_BANDWIDTH_BPS = 128 * (1 << 20) * 8  # MAX_THROTTLE, 128 MiB/s
QEMU_DOWNTIME_LIMIT = 0.300  # DEFAULT_MIGRATE_SET_DOWNTIME, ms -> s
QEMU_XBZRLE_CACHE = 64 << 20  # DEFAULT_MIGRATE_XBZRLE_CACHE_SIZE

Engine = Literal["precopy", "postcopy"]
PredictorName = Literal["last", "harmonic", "robust"]


class SettingsError(ValueError):
    """A migration setting out of its range (names the field and the value)."""


@dataclass(frozen=True)
class MigrationSettings:
    """Every knob of a migration; see the presets for sensible combinations.

    ``streams``: a fixed number of AMST streams, or ``None`` for the data plane's choice by
    network mode (DWCP). ``compression``/``delta``/``zero_pages``: the three HDE stages.
    ``max_downtime``: stop iterating once the remaining dirty memory is expected to go in this
    long. ``max_rounds``: stop iterating after this many rounds even if not converged (QEMU has no
    limit and would iterate forever; a bound keeps experiments finite, and the report says the
    migration did not converge). ``auto_converge`` throttles the guest's vCPUs when rounds do not
    converge, with QEMU's parameters. ``postcopy_after``: for the post-copy engine, how many
    pre-copy rounds run before the switch (0 is pure post-copy). ``verify_memory``: at
    switch-over the destination checks a digest of its memory against the source's and refuses
    to resume on a mismatch; free in the simulator, it costs one pass over the guest's memory on
    each side *during the downtime* on real machines (about 0.3 s per 4 GiB at 15 GB/s), which
    is why QEMU does not do it: turn it off in production, keep it on in tests.
    ``checksum_raw_pages``: give uncompressed pages their own CRC in the batch. Off by default,
    as AMST's ``verify_chunks``: the runtime's streams already check every record end to end (the
    contract), so it would be a second pass over the data on each side; compressed and delta
    frames always carry HDE's checksum, which also guards the decoders.
    ``timeout``: how long a control message may go unanswered before the migration fails (and
    the source's guest runs on), up to the switch-over. From the switch-over on, failing is not
    safe, since the destination may have resumed the guest (:class:`~.service.MigrationInDoubt`):
    the paused source keeps asking for up to ``resolve_timeout`` before an operator must decide.
    """

    engine: Engine = "precopy"
    streams: int | None = 1
    compression: bool = False
    delta: bool = False
    zero_pages: bool = True
    xbzrle_cache_bytes: int = QEMU_XBZRLE_CACHE
    max_downtime: float = QEMU_DOWNTIME_LIMIT
    max_rounds: int = 30
    max_bandwidth_bps: float | None = QEMU_MAX_BANDWIDTH_BPS
    predictor: PredictorName = "last"
    auto_converge: bool = False
    throttle_trigger: float = 0.50  # throttle-trigger-threshold: dirty > 50% of transferred
    throttle_initial: float = 0.20  # cpu-throttle-initial
    throttle_increment: float = 0.10  # cpu-throttle-increment
    throttle_max: float = 0.99  # max-cpu-throttle
    batch_bytes: int = 32 << 20  # page bytes read and encoded per AMST transfer
    pipeline: int = 1  # batches in flight at once
    postcopy_after: int = 1
    postcopy_push_bytes: int = 16 << 20  # background push batch (post-copy)
    timeout: float = 60.0  # how long a control message may go unanswered
    resolve_timeout: float = 3600.0  # how long an unanswered switch-over is asked about (see above)
    verify_memory: bool = True  # compare memory digests at switch-over (see the class docstring)
    checksum_raw_pages: bool = False  # see the class docstring

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise SettingsError(f"migration setting {field}={getattr(self, field)!r}: {what}")

        need(self.engine in ("precopy", "postcopy"), "engine", "use 'precopy' or 'postcopy'")
        need(self.streams is None or self.streams >= 1, "streams", "must be >= 1 (or None: by mode)")
        need(self.xbzrle_cache_bytes >= 0, "xbzrle_cache_bytes", "must be >= 0")
        need(self.max_downtime > 0, "max_downtime", "must be > 0 seconds")
        need(self.max_rounds >= 1, "max_rounds", "must be >= 1")
        need(
            self.max_bandwidth_bps is None or self.max_bandwidth_bps > 0,
            "max_bandwidth_bps",
            "must be > 0 (or None: no cap)",
        )
        need(self.predictor in ("last", "harmonic", "robust"), "predictor", "use last, harmonic or robust")
        for name in ("throttle_trigger", "throttle_initial", "throttle_increment", "throttle_max"):
            need(0 < getattr(self, name) <= 1, name, "must be in (0, 1]")
        need(self.batch_bytes >= 4096, "batch_bytes", "must be at least one page (4096)")
        need(self.pipeline >= 1, "pipeline", "must be >= 1")
        need(self.postcopy_after >= 0, "postcopy_after", "must be >= 0")
        need(self.postcopy_push_bytes >= 4096, "postcopy_push_bytes", "must be at least one page")
        need(self.timeout > 0, "timeout", "must be > 0 seconds")
        need(self.resolve_timeout > 0, "resolve_timeout", "must be > 0 seconds")

    @classmethod
    def qemu_defaults(cls, **overrides) -> MigrationSettings:
        """The baseline: QEMU's pre-copy with its shipped defaults (module docstring)."""
        return cls(**overrides)

    @classmethod
    def dwcp(cls, **overrides) -> MigrationSettings:
        """DWCP v3 migration: AMST + HDE + PBA, auto-converge, no bandwidth cap."""
        base = cls(
            streams=None,
            compression=True,
            delta=True,
            zero_pages=True,
            xbzrle_cache_bytes=1 << 30,
            max_bandwidth_bps=None,
            predictor="robust",
            auto_converge=True,
            pipeline=2,
        )
        return replace(base, **overrides)

    def with_(self, **changes) -> MigrationSettings:
        return replace(self, **changes)
