"""`novacron node` runs a real node: it talks to a peer over mTLS, serves its health check and
metrics over HTTP, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _backend_testkit import free_port, http_get, port_is_closed, wait_until
from prometheus_client.parser import text_string_to_metric_families

from novacron.backends import AsyncioRuntime, PeerDirectory, make_test_pki
from novacron.cli import node_cmd
from novacron.monitoring import HeartbeatService


def _write_config(
    path: Path,
    *,
    node_id: str,
    port: int,
    data_dir: Path,
    tls: bool,
    health_port: int | None = None,
    metrics_port: int | None = None,
) -> Path:
    """A node config on loopback; the health check on ``health_port`` (default: a free port, never
    the default 8080), metrics on ``metrics_port`` (default: off)."""
    metrics = f"true\n  metrics_port: {metrics_port}" if metrics_port else "false"
    path.write_text(
        f"""
system:
  node_id: {node_id}
  data_dir: {data_dir}
  log_level: info
  shutdown_timeout: 5s
  health_check_port: {health_port or free_port()}
network:
  listen_address: 127.0.0.1
  bind_port: {port}
  enable_tls: {str(tls).lower()}
dwcp:
  transport:
    enable_rdma: true
  consensus:
    heartbeat_interval: 50ms
    election_timeout: 1s
monitoring:
  enable_metrics: {metrics}
"""
    )
    return path


@dataclass
class NodeProcess:
    """A ``novacron node`` process, its stderr collected line by line as it runs."""

    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Future | None = None

    @classmethod
    async def start(cls, config: Path, *args: str) -> NodeProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novacron.cli.node_cmd", "--config", str(config), *args,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        node = cls(proc)
        node.reader = asyncio.ensure_future(node._drain())
        return node

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def wait_for(self, text: str, timeout: float = 60) -> None:
        await wait_until(lambda: self.said(text) or self.proc.returncode is not None, timeout, text)
        assert self.said(text), "\n".join(self.lines[-20:])

    async def exit_status(self, timeout: float = 30) -> int:
        """Wait for the process to end (and its stderr to be read); its exit status."""
        status = await asyncio.wait_for(self.proc.wait(), timeout)
        assert self.reader is not None
        await asyncio.wait_for(self.reader, 10)
        return status

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.exit_status()

    async def kill(self) -> None:
        """Clean-up: kill the process if it still runs."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()


async def test_node_runs_heartbeats_with_a_peer_and_stops_on_sigterm(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ["sub", "probe"])
    port = free_port()
    config = _write_config(
        tmp_path / "node.yaml", node_id="sub", port=port, data_dir=tmp_path / "data", tls=True
    )
    # The in-test peer: a real runtime with its own certificate, running heartbeats too.
    probe = AsyncioRuntime("probe", directory=PeerDirectory(), tls=pki["probe"])
    await probe.start()
    probe.directory.register("sub", "127.0.0.1", port)
    heartbeat = HeartbeatService(probe, interval=0.05)

    node = await NodeProcess.start(
        config,
        "--peers", f"probe=127.0.0.1:{probe.address[1]}",
        "--tls-cert", str(pki["sub"].cert),
        "--tls-key", str(pki["sub"].key),
        "--tls-ca", str(pki["sub"].ca),
        "--region", "eu-west",
    )  # fmt: skip
    try:
        await node.wait_for("node sub started")
        lines = node.lines
        started = next(line for line in lines if "node sub started" in line)
        assert f"127.0.0.1:{port}" in started and "peers probe" in started
        assert "transport: tcp (pyverbs not installed" in "\n".join(lines) or "no RDMA" in started

        await wait_until(lambda: heartbeat.peers["sub"].acks > 0, 30, "acks from the node")
        await wait_until(lambda: probe.stats.received >= 2, 30, "the node's own heartbeats")
        await node.wait_for("peer probe is up", 30)

        assert await node.stop() == 0, "\n".join(lines[-20:])
        assert node.said("node sub stopped"), lines[-5:]
        assert (tmp_path / "data" / "sub.sqlite3").exists()
        assert not node.said(" ERROR "), lines
    finally:
        await node.kill()
        heartbeat.stop()
        await probe.close()


def test_tls_enabled_without_certificates_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path / "node.yaml", node_id="n1", port=9999, data_dir=tmp_path, tls=True)
    assert node_cmd.main(["--config", str(config), "--tls-cert", str(tmp_path / "x.pem")]) == 2
    err = capsys.readouterr().err
    assert "network.enable_tls is true" in err and "--tls-key, --tls-ca" in err


def test_bad_config_and_bad_peers_exit_with_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert node_cmd.main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
    config = _write_config(tmp_path / "n.yaml", node_id="n1", port=9999, data_dir=tmp_path, tls=False)
    assert node_cmd.main(["--config", str(config), "--peers", "n2=nowhere"]) == 2
    assert "--peers" in capsys.readouterr().err


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_a_node_with_state_sync_is_a_replica_that_keeps_its_map_across_a_restart(
    tmp_path: Path, encrypted: bool
) -> None:
    """``dwcp.enable_v3_state_sync``: the node replicates the ASS map with its peers (here an
    in-test replica), serves ``StateClient`` requests, and finds its map in its storage on restart;
    with ``security.encryption_key_file``, none of it is on the disk in the clear."""
    from novacron.sync import StateClient, StateSync, SyncSettings

    port = free_port()
    config = _write_config(
        tmp_path / "node.yaml", node_id="sub", port=port, data_dir=tmp_path / "data", tls=False
    )
    sync_on = "dwcp:\n  enable_v3_state_sync: true\n  forced_mode: internet\n"
    config.write_text(config.read_text().replace("dwcp:\n", sync_on, 1))
    if encrypted:
        (tmp_path / "node.key").write_bytes(bytes(range(32)))
        config.write_text(config.read_text() + f"security:\n  encryption_key_file: {tmp_path / 'node.key'}\n")
    probe = AsyncioRuntime("probe", directory=PeerDirectory())
    await probe.start()
    probe.directory.register("sub", "127.0.0.1", port)
    replica = StateSync(probe, peers=["sub", "probe"], settings=SyncSettings(fanout=None, interval=0.2))
    client = StateClient(probe, ["sub"], timeout=1.0)

    async def run_node() -> NodeProcess:
        node = await NodeProcess.start(config, "--peers", f"probe=127.0.0.1:{probe.address[1]}")
        await node.wait_for("node sub started")
        return node

    async def value_at_sub(key: str, *, answered_within: float = 30.0):
        """The node's values of ``key``, asking again while it does not answer (a restarted
        node's connection to the probe comes back after a reconnection backoff)."""
        deadline = asyncio.get_running_loop().time() + answered_within
        while True:
            try:
                return (await client.get(key)).values
            except TimeoutError:
                if asyncio.get_running_loop().time() > deadline:
                    return None

    node = None
    try:
        node = await run_node()
        assert node.said("state sync: replica of sub, probe (0 keys stored)"), node.lines
        await replica.put("from-probe", b"value-one")  # pushed to the node
        for _ in range(100):
            if await value_at_sub("from-probe") == [b"value-one"]:
                break
            await asyncio.sleep(0.05)
        assert await value_at_sub("from-probe") == [b"value-one"]
        await client.put("from-client", b"value-two")  # written at the node, pushed to the probe
        await wait_until(lambda: replica.get("from-client").values == [b"value-two"], 30, "the node's push")
        assert await node.stop() == 0, "\n".join(node.lines[-20:])

        node = await run_node()
        assert node.said("state sync: replica of sub, probe (2 keys stored)"), node.lines
        assert await value_at_sub("from-client") == [b"value-two"]
        assert await node.stop() == 0, "\n".join(node.lines[-20:])
        assert not node.said(" ERROR "), node.lines
        assert node.said("storage encrypted at rest") == encrypted
        on_disk = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir())
        assert (b"value-two" in on_disk) != encrypted
    finally:
        if node is not None:
            await node.kill()
        replica.stop()
        await probe.close()


async def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(http_get, f"http://127.0.0.1:{port}{path}")


def _samples(exposition: bytes) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(exposition.decode())
        for s in family.samples
    ]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    (value,) = [v for n, have, v in samples if n == name and labels.items() <= have.items()]
    return value


async def test_a_node_serves_its_health_check_and_metrics_until_it_stops(tmp_path: Path) -> None:
    """What ``curl HOST:PORT/healthz`` and a Prometheus scrape see of a node whose peer answers
    its heartbeats; SIGTERM closes both endpoints with the node."""
    port, health, metrics = free_port(), free_port(), free_port()
    config = _write_config(
        tmp_path / "node.yaml",
        node_id="sub",
        port=port,
        data_dir=tmp_path / "data",
        tls=False,
        health_port=health,
        metrics_port=metrics,
    )
    probe = AsyncioRuntime("probe", directory=PeerDirectory())
    await probe.start()
    probe.directory.register("sub", "127.0.0.1", port)
    heartbeat = HeartbeatService(probe, interval=0.05)
    node = await NodeProcess.start(
        config, "--peers", f"probe=127.0.0.1:{probe.address[1]}", "--region", "eu-west"
    )
    try:
        await node.wait_for("node sub started")
        for _ in range(600):  # until the node has heard the probe (30 s at most)
            status, _, body = await _get(health, "/healthz")
            if json.loads(body).get("peers_answering") == ["probe"]:
                break
            await asyncio.sleep(0.05)
        assert status == 200
        answer = json.loads(body)
        assert answer["status"] == "ok" and answer["node"] == "sub" and answer["peers_answering"] == ["probe"]

        status, headers, body = await _get(metrics, "/metrics")
        assert status == 200 and headers["content-type"].startswith("text/plain")
        samples = _samples(body)
        assert _value(samples, "novacron_node_info", node="sub", region="eu-west") == 1
        assert _value(samples, "novacron_heartbeat_suspected", peer="probe") == 0
        assert _value(samples, "novacron_network_sent_total") > 0
        assert _value(samples, "process_resident_memory_bytes") > 0
        assert (await _get(health, "/metrics"))[0] == 404  # two ports: each serves its own route
        assert (await _get(metrics, "/healthz"))[0] == 404

        assert await node.stop() == 0, "\n".join(node.lines[-20:])
        assert port_is_closed(health) and port_is_closed(metrics)
        assert not node.said(" ERROR "), node.lines
    finally:
        await node.kill()
        heartbeat.stop()
        await probe.close()


@pytest.mark.parametrize("field", ["system.health_check_port", "monitoring.metrics_port"])
async def test_a_node_whose_http_port_is_taken_exits_1_naming_the_port_and_its_field(
    tmp_path: Path, field: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy, free = taken.getsockname()[1], free_port()
        health, metrics = (busy, free) if field == "system.health_check_port" else (free, busy)
        config = _write_config(
            tmp_path / "node.yaml",
            node_id="sub",
            port=free_port(),
            data_dir=tmp_path / "data",
            tls=False,
            health_port=health,
            metrics_port=metrics,
        )
        node = await NodeProcess.start(config)
        try:
            assert await node.exit_status(60) == 1, "\n".join(node.lines[-20:])
        finally:
            await node.kill()
    errors = [line for line in node.lines if " ERROR " in line]
    assert len(errors) == 1 and f"127.0.0.1:{busy}" in errors[0] and field in errors[0], node.lines
    assert not node.said("node sub started")
