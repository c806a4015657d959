"""`novacron node` runs a real node: it talks to a peer over mTLS and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest
from _backend_testkit import wait_until

from novacron.backends import AsyncioRuntime, PeerDirectory, make_test_pki
from novacron.cli import node_cmd
from novacron.monitoring import HeartbeatService


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_config(path: Path, *, node_id: str, port: int, data_dir: Path, tls: bool) -> Path:
    path.write_text(
        f"""
system:
  node_id: {node_id}
  data_dir: {data_dir}
  log_level: info
  shutdown_timeout: 5s
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
  enable_metrics: false
"""
    )
    return path


async def test_node_runs_heartbeats_with_a_peer_and_stops_on_sigterm(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", ["sub", "probe"])
    port = _free_port()
    config = _write_config(
        tmp_path / "node.yaml", node_id="sub", port=port, data_dir=tmp_path / "data", tls=True
    )
    # The in-test peer: a real runtime with its own certificate, running heartbeats too.
    probe = AsyncioRuntime("probe", directory=PeerDirectory(), tls=pki["probe"])
    await probe.start()
    probe.directory.register("sub", "127.0.0.1", port)
    heartbeat = HeartbeatService(probe, interval=0.05)

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novacron.cli.node_cmd",
        "--config", str(config),
        "--peers", f"probe=127.0.0.1:{probe.address[1]}",
        "--tls-cert", str(pki["sub"].cert),
        "--tls-key", str(pki["sub"].key),
        "--tls-ca", str(pki["sub"].ca),
        "--region", "eu-west",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def drain() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.ensure_future(drain())
    try:
        await wait_until(lambda: any("node sub started" in line for line in lines), 60, "start")
        started = next(line for line in lines if "node sub started" in line)
        assert f"127.0.0.1:{port}" in started and "peers probe" in started
        assert "transport: tcp (pyverbs not installed" in "\n".join(lines) or "no RDMA" in started

        await wait_until(lambda: heartbeat.peers["sub"].acks > 0, 30, "acks from the node")
        await wait_until(lambda: probe.stats.received >= 2, 30, "the node's own heartbeats")
        await wait_until(lambda: any("peer probe is up" in line for line in lines), 30, "peer up")

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "\n".join(lines[-20:])
        await asyncio.wait_for(reader, 10)
        assert any("node sub stopped" in line for line in lines), lines[-5:]
        assert (tmp_path / "data" / "sub.sqlite3").exists()
        assert not any(" ERROR " in line for line in lines), lines
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
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


async def test_a_node_with_state_sync_is_a_replica_that_keeps_its_map_across_a_restart(
    tmp_path: Path,
) -> None:
    """``dwcp.enable_v3_state_sync``: the node replicates the ASS map with its peers (here an
    in-test replica), serves ``StateClient`` requests, and finds its map in its storage on restart."""
    from novacron.sync import StateClient, StateSync, SyncSettings

    port = _free_port()
    config = _write_config(
        tmp_path / "node.yaml", node_id="sub", port=port, data_dir=tmp_path / "data", tls=False
    )
    sync_on = "dwcp:\n  enable_v3_state_sync: true\n  forced_mode: internet\n"
    config.write_text(config.read_text().replace("dwcp:\n", sync_on, 1))
    probe = AsyncioRuntime("probe", directory=PeerDirectory())
    await probe.start()
    probe.directory.register("sub", "127.0.0.1", port)
    replica = StateSync(probe, peers=["sub", "probe"], settings=SyncSettings(fanout=None, interval=0.2))
    client = StateClient(probe, ["sub"], timeout=1.0)

    async def run_node() -> tuple[asyncio.subprocess.Process, list[str], asyncio.Future]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novacron.cli.node_cmd",
            "--config", str(config), "--peers", f"probe=127.0.0.1:{probe.address[1]}",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        lines: list[str] = []

        async def drain() -> None:
            async for raw in proc.stderr:
                lines.append(raw.decode(errors="replace").rstrip())

        reader = asyncio.ensure_future(drain())
        await wait_until(lambda: any("node sub started" in line for line in lines), 60, "start")
        return proc, lines, reader

    async def stop(proc, lines, reader) -> None:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "\n".join(lines[-20:])
        await asyncio.wait_for(reader, 10)

    async def value_at_sub(key: str):
        try:
            return (await client.get(key)).values
        except TimeoutError:
            return None

    proc = None
    try:
        proc, lines, reader = await run_node()
        assert any("state sync: replica of sub, probe (0 keys stored)" in line for line in lines), lines
        await replica.put("from-probe", b"1")  # pushed to the node
        for _ in range(100):
            if await value_at_sub("from-probe") == [b"1"]:
                break
            await asyncio.sleep(0.05)
        assert await value_at_sub("from-probe") == [b"1"]
        await client.put("from-client", b"2")  # written at the node, pushed to the probe
        await wait_until(lambda: replica.get("from-client").values == [b"2"], 30, "the node's push")
        await stop(proc, lines, reader)

        proc, lines, reader = await run_node()
        assert any("state sync: replica of sub, probe (2 keys stored)" in line for line in lines), lines
        assert await value_at_sub("from-client") == [b"2"]
        await stop(proc, lines, reader)
        assert not any(" ERROR " in line for line in lines), lines
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        replica.stop()
        await probe.close()
