"""Mutual TLS: nodes with certificates from the cluster CA talk; nobody else gets in."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from pathlib import Path

import pytest
from _backend_testkit import Ping, PingPong, wait_until

from novacron.backends import LocalCluster, TLSConfig, make_test_pki
from novacron.backends.tcp import wire
from novacron.backends.tcp.framing import encode_frame
from novacron.runtime import codec


async def _ping_until_answered(apps: dict[str, PingPong], src: str, dst: str) -> None:
    apps[src].rt.send(dst, Ping(len(apps[src].pongs)))
    await wait_until(lambda: (dst, len(apps[src].pongs) - 1) in apps[src].pongs, what="a pong")


async def test_two_nodes_talk_and_transfer_over_mutual_tls(tmp_path: Path) -> None:
    apps: dict[str, PingPong] = {}
    async with LocalCluster(tmp_path, tls=True) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], lambda rt: apps.setdefault(rt.node_id, PingPong(rt)))
        await _ping_until_answered(apps, "a", "b")
        await _ping_until_answered(apps, "b", "a")
        got: list[bytes] = []
        b.on_transfer("img", lambda src, data: got.append(bytes(data)))
        payload = os.urandom(2 * 1024 * 1024)
        report = await a.transfer("b", payload, streams=3, tag="img")
        assert got == [payload] and report.nbytes == len(payload)
        assert sum(b.stats.rejected.values()) == 0


def _attempt(port: int, context: ssl.SSLContext, hello_as: str) -> None:
    """Connect as a message client with ``context`` and say hello; swallow the outcome."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(wire.MESSAGE_PREAMBLE)
            with context.wrap_socket(raw) as tls:
                hello = wire.Hello(version=wire.PROTOCOL_VERSION, node_id=hello_as)
                tls.sendall(encode_frame(wire.encode(hello)) + encode_frame(codec.encode(Ping(666))))
                while tls.recv(4096):
                    pass
    except (ssl.SSLError, OSError):
        pass  # refused during or right after the handshake: what we want


def _client_context(ca: Path, cert: TLSConfig | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


async def test_clients_without_a_valid_certificate_are_refused(tmp_path: Path) -> None:
    apps: dict[str, PingPong] = {}
    async with LocalCluster(tmp_path / "cluster", tls=True) as cluster:
        a, b = await cluster.add_nodes(["a", "b"], lambda rt: apps.setdefault(rt.node_id, PingPong(rt)))
        ca = tmp_path / "cluster" / "pki" / "ca.pem"
        port = b.address[1]

        # 1. no client certificate at all
        await asyncio.to_thread(_attempt, port, _client_context(ca), "a")
        # 2. a certificate for "a", but from another CA
        rogue = make_test_pki(tmp_path / "rogue", ["a"])["a"]
        await asyncio.to_thread(_attempt, port, _client_context(ca, rogue), "a")
        await wait_until(lambda: b.stats.rejected["tls_handshake"] == 2, what="2 handshake refusals")

        # 3. a genuine certificate of the cluster (node "c") claiming to be "a"
        await cluster.add_node("c")
        pki_dir = tmp_path / "cluster" / "pki"
        c_cert = TLSConfig(pki_dir / "c.pem", pki_dir / "c.key", ca)
        await asyncio.to_thread(_attempt, port, _client_context(ca, c_cert), "a")
        await wait_until(lambda: b.stats.rejected["hello_rejected"] == 1, what="the impostor")

        assert not any(src == "a" and n == 666 for src, n in apps["b"].pings), "nothing got through"
        await _ping_until_answered(apps, "a", "b")  # and the node keeps serving


def test_tls_config_reports_missing_files(tmp_path: Path) -> None:
    config = TLSConfig(tmp_path / "nope.pem", tmp_path / "nope.key", tmp_path / "ca.pem")
    with pytest.raises(FileNotFoundError, match="cert"):
        config.server_context()


def test_test_pki_issues_certificates_named_after_nodes(tmp_path: Path) -> None:
    configs = make_test_pki(tmp_path, ["n1", "n2"])
    ctx = configs["n1"].server_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    text = configs["n2"].cert.read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    assert oct(configs["n2"].key.stat().st_mode & 0o777) == "0o600"
