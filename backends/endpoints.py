"""A node's operational HTTP endpoints, ``/healthz`` and ``/metrics``, as its config asks.

``/healthz`` listens on ``system.health_check_port``; ``/metrics`` (Prometheus text format) on
``monitoring.metrics_port`` when ``monitoring.enable_metrics`` is on. One server answers both
when the two ports are equal. Both listen on ``network.listen_address``, like the peer port.

``/healthz`` answers 200 with the node's summary (:meth:`NodeCollector.summary`) while the node
runs, and 503 once its shutdown has begun, so a load balancer or supervisor stops sending it work
before it goes away. The servers are :class:`~.http.HttpServer`s on the node's event loop.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from novacron.config import NovaCronConfig
from novacron.monitoring.metrics import NodeCollector, labelled, node_registry

from .http import HttpServer, HttpStats, Response
from .runtime import AsyncioRuntime

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


class EndpointBindError(Exception):
    """An endpoint's port could not be bound; the message names the port and its config field."""


@dataclass(frozen=True)
class Listener:
    """One HTTP server to start: its port, the config fields that set it, the paths it serves."""

    port: int
    fields: tuple[str, ...]
    paths: tuple[str, ...]


def listeners(config: NovaCronConfig) -> list[Listener]:
    """The servers ``config`` asks for: one per distinct port."""
    wanted = [("system.health_check_port", config.system.health_check_port, HEALTH_PATH)]
    if config.monitoring.enable_metrics:
        wanted.append(("monitoring.metrics_port", config.monitoring.metrics_port, METRICS_PATH))
    by_port: dict[int, Listener] = {}
    for name, port, path in wanted:
        known = by_port.get(port, Listener(port, (), ()))
        by_port[port] = Listener(port, (*known.fields, name), (*known.paths, path))
    return list(by_port.values())


class NodeEndpoints:
    """The HTTP endpoints of the node running on ``rt``, reading the components given."""

    def __init__(
        self,
        config: NovaCronConfig,
        rt: AsyncioRuntime,
        *,
        heartbeat: Any = None,
        consensus: Any = None,
        state_sync: Any = None,
        detector: Any = None,
        hosting: Any = None,
    ) -> None:
        self.host = config.network.listen_address
        self.collector = NodeCollector(
            rt,
            version=_version(),
            network=rt.stats,
            heartbeat=heartbeat,
            consensus=consensus,
            state_sync=state_sync,
            detector=detector,
            hosting=hosting,
        )
        self.stats = HttpStats()  # shared by the servers: one set of counters per node
        self.registry = node_registry(self.collector, HttpCollector(self.stats))
        self.stopping = False
        self.servers: list[HttpServer] = []
        self._listeners = listeners(config)
        self._node_id = rt.node_id

    async def start(self) -> None:
        """Start every server; :class:`EndpointBindError` (with none left open) if one cannot bind."""
        routes = {HEALTH_PATH: self.health, METRICS_PATH: self.metrics}
        for listener in self._listeners:
            server = HttpServer(
                {path: routes[path] for path in listener.paths},
                host=self.host,
                port=listener.port,
                stats=self.stats,
                name=self._node_id,
            )
            try:
                await server.start()
            except OSError as exc:
                await self.close()
                raise EndpointBindError(
                    f"cannot listen on {self.host}:{listener.port} for {', '.join(listener.paths)} "
                    f"(set by {' and '.join(listener.fields)}): {exc.strerror or exc}"
                ) from exc
            self.servers.append(server)

    def begin_shutdown(self) -> None:
        """From now on ``/healthz`` answers 503."""
        self.stopping = True

    async def close(self) -> None:
        await asyncio.gather(*(server.close() for server in self.servers))
        self.servers.clear()

    def health(self) -> Response:
        if self.stopping:
            return Response.json(503, {"status": "stopping", "node": self._node_id})
        return Response.json(200, {"status": "ok", **self.collector.summary()})

    def metrics(self) -> Response:
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)


class HttpCollector(Collector):
    """What the endpoints answered and refused, read from their :class:`HttpStats` at scrape time."""

    def __init__(self, stats: HttpStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        yield labelled(
            CounterMetricFamily,
            "novacron_http_requests",
            'HTTP responses of the node\'s endpoints, by path ("other": none of them) and status code',
            ("path", "code"),
            [((path, str(code)), n) for (path, code), n in sorted(self.stats.responses.items())],
        )
        yield labelled(
            CounterMetricFamily,
            "novacron_http_dropped_connections",
            "HTTP connections closed without a response, by reason (idle: no request in time, "
            "timeout: a request or its response too slow, too_many_connections)",
            ("reason",),
            [((reason,), n) for reason, n in sorted(self.stats.dropped.items())],
        )


def _version() -> str:
    try:
        return importlib.metadata.version("novacron")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return "unknown"
