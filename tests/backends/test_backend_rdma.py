"""Transport selection: RDMA only when asked for and really usable; TCP with a reason otherwise."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from novacron.backends import rdma, select_transport


def _fake_pyverbs(monkeypatch: pytest.MonkeyPatch, get_device_list) -> None:  # noqa: ANN001
    device = types.ModuleType("pyverbs.device")
    device.get_device_list = get_device_list  # type: ignore[attr-defined]
    package = types.ModuleType("pyverbs")
    package.device = device  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyverbs", package)
    monkeypatch.setitem(sys.modules, "pyverbs.device", device)


def test_tcp_when_rdma_is_not_requested(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="novacron.backends.rdma"):
        choice = select_transport(False)
    assert (choice.kind, choice.reason) == ("tcp", "enable_rdma is false")
    assert "transport: tcp (enable_rdma is false)" in caplog.text


def test_tcp_when_pyverbs_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyverbs", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "pyverbs.device", None)
    choice = select_transport(True)
    assert choice.kind == "tcp" and choice.reason.startswith("pyverbs not installed")


def test_tcp_when_there_is_no_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pyverbs(monkeypatch, lambda: [])
    assert select_transport(True) == rdma.TransportChoice("tcp", "no RDMA device")


def test_tcp_when_pyverbs_cannot_list_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> list:
        raise OSError("rdma-core not loaded")

    _fake_pyverbs(monkeypatch, broken)
    choice = select_transport(True)
    assert choice.kind == "tcp" and "rdma-core not loaded" in choice.reason


def test_a_device_is_not_enough_without_an_rdma_data_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_pyverbs(monkeypatch, lambda: ["mlx5_0"])
    assert not rdma.RDMA_DATA_PATH_IMPLEMENTED
    with caplog.at_level(logging.INFO, logger="novacron.backends.rdma"):
        choice = select_transport(True)
    assert choice.kind == "tcp"
    assert "not implemented in this build; using tcp" in choice.reason
    assert "1 device" in choice.reason
    assert choice.reason in caplog.text
