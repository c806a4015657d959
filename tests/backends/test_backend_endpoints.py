"""A node's ``/healthz`` and ``/metrics``, assembled from its config, read by the standard
library's HTTP client on loopback."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from _backend_testkit import free_port, http_get, port_is_closed, wait_until
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from novacron.backends import LocalCluster
from novacron.backends.endpoints import EndpointBindError, Listener, NodeEndpoints, listeners
from novacron.config import NovaCronConfig, config_from_mapping
from novacron.monitoring import HeartbeatService

HEALTH, METRICS = "system.health_check_port", "monitoring.metrics_port"


def config(health: int, metrics: int, *, enable_metrics: bool = True) -> NovaCronConfig:
    return config_from_mapping(
        {
            "system": {"health_check_port": health},
            "network": {"listen_address": "127.0.0.1", "bind_port": 1},
            "monitoring": {"enable_metrics": enable_metrics, "metrics_port": metrics},
        },
        env={},
    )


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}", method=method)


def test_one_server_per_port_and_none_for_metrics_when_they_are_off():
    assert listeners(config(8080, 9091)) == [
        Listener(8080, (HEALTH,), ("/healthz",)),
        Listener(9091, (METRICS,), ("/metrics",)),
    ]
    assert listeners(config(8080, 8080)) == [Listener(8080, (HEALTH, METRICS), ("/healthz", "/metrics"))]
    assert listeners(config(8080, 9091, enable_metrics=False)) == [Listener(8080, (HEALTH,), ("/healthz",))]


async def test_healthz_and_metrics_show_the_running_node_and_healthz_turns_503_at_shutdown(tmp_path):
    async with LocalCluster(tmp_path) as cluster:
        heartbeats: dict[str, HeartbeatService] = {}
        a, _ = await cluster.add_nodes(
            ["a", "b"], lambda rt: heartbeats.setdefault(rt.node_id, HeartbeatService(rt, interval=0.05))
        )
        port = free_port()
        endpoints = NodeEndpoints(config(port, port), a, heartbeat=heartbeats["a"])
        await endpoints.start()
        try:
            assert len(endpoints.servers) == 1  # one port: one server answers both

            async def answering() -> list[str]:
                status, _, body = await get(port, "/healthz")
                assert status == 200
                return json.loads(body)["peers_answering"]

            for _ in range(600):
                if await answering() == ["b"]:
                    break
                await asyncio.sleep(0.05)
            status, headers, body = await get(port, "/healthz")
            health = json.loads(body)
            assert health["status"] == "ok" and health["node"] == "a" and health["peers_answering"] == ["b"]
            assert health["uptime_seconds"] >= 0

            status, headers, body = await get(port, "/metrics")
            assert status == 200 and headers["content-type"] == CONTENT_TYPE_LATEST
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples
            }
            assert samples["novacron_heartbeat_suspected", (("peer", "b"),)] == 0
            assert samples["novacron_network_sent_total", ()] > 0
            assert samples["novacron_http_requests_total", (("code", "200"), ("path", "/healthz"))] >= 2
            assert ("process_cpu_seconds_total", ()) in samples

            status, _, body = await get(port, "/healthz", "HEAD")
            assert status == 200 and body == b""

            endpoints.begin_shutdown()
            status, _, body = await get(port, "/healthz")
            assert status == 503 and json.loads(body) == {"status": "stopping", "node": "a"}
            assert (await get(port, "/metrics"))[0] == 200  # still readable while the node stops
        finally:
            await endpoints.close()
        assert port_is_closed(port)


async def test_metrics_off_leaves_only_healthz(tmp_path):
    async with LocalCluster(tmp_path) as cluster:
        a = await cluster.add_node("a")
        health, metrics = free_port(), free_port()
        endpoints = NodeEndpoints(config(health, metrics, enable_metrics=False), a)
        await endpoints.start()
        try:
            assert (await get(health, "/healthz"))[0] == 200
            assert (await get(health, "/metrics"))[0] == 404
            assert port_is_closed(metrics)
        finally:
            await endpoints.close()


async def test_a_port_taken_is_an_error_naming_it_and_its_field_and_nothing_stays_open(tmp_path):
    async with LocalCluster(tmp_path) as cluster:
        a = await cluster.add_node("a")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            health = free_port()
            endpoints = NodeEndpoints(config(health, busy), a)
            with pytest.raises(EndpointBindError) as caught:
                await endpoints.start()
        message = str(caught.value)
        assert f"127.0.0.1:{busy}" in message and METRICS in message and "/metrics" in message
        assert endpoints.servers == []
        await wait_until(lambda: port_is_closed(health), 30, "the health server, started first, closed")
