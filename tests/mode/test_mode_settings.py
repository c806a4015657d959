"""DetectionSettings from the dwcp configuration, the environment variable, and validation."""

import pytest

from novacron.config import load_config
from novacron.mode import STATIC_DEFAULT_MODE, DetectionSettings, Mode


def test_settings_follow_the_dwcp_section():
    cfg = load_config(env={})
    s = DetectionSettings.from_config(cfg.dwcp)
    assert s.interval == cfg.dwcp.detection_interval == 30.0
    assert s.auto_detect and s.forced_mode is None and s.static_mode is None
    assert s.probe_streams == cfg.dwcp.transport.min_streams
    assert s.hysteresis == 3


def test_forced_mode_from_the_config_file_and_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "node.yaml"
    path.write_text("dwcp:\n  forced_mode: internet\n  detection_interval: 5s\n")
    s = DetectionSettings.from_config(load_config(path, env={}).dwcp)
    assert s.forced_mode is Mode.INTERNET and s.static_mode is Mode.INTERNET and s.interval == 5.0

    monkeypatch.setenv("NOVACRON_DWCP_MODE", "datacenter")  # the environment wins over the file
    s = DetectionSettings.from_config(load_config(path).dwcp)
    assert s.forced_mode is Mode.DATACENTER

    monkeypatch.setenv("NOVACRON_DWCP_MODE", "auto")  # auto means detect
    assert DetectionSettings.from_config(load_config(path).dwcp).forced_mode is None


def test_auto_detection_off_without_a_forced_mode_runs_the_static_default():
    cfg = load_config(env={"NOVACRON_DWCP__ENABLE_AUTO_DETECTION": "false"})
    s = DetectionSettings.from_config(cfg.dwcp)
    assert s.static_mode is STATIC_DEFAULT_MODE is Mode.HYBRID


def test_overrides_and_validation():
    s = DetectionSettings.from_config(load_config(env={}).dwcp, hysteresis=5, interval=2.0)
    assert (s.hysteresis, s.interval) == (5, 2.0)
    assert DetectionSettings(forced_mode="Hybrid").forced_mode is Mode.HYBRID
    with pytest.raises(TypeError, match="unknown detection settings"):
        DetectionSettings.from_config(load_config(env={}).dwcp, hystersis=5)
    for bad in (
        {"interval": 0},
        {"hysteresis": 0},
        {"probes": 0},
        {"probe_timeout": 0},
        {"bandwidth_small_bytes": 8 << 20},
        {"probe_streams": 0},
        {"forced_mode": "lan"},
    ):
        with pytest.raises(ValueError):
            DetectionSettings(**bad)
