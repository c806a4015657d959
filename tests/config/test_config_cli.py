"""``novacron config validate`` and ``novacron config show``, driven through argparse."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import yaml

from novacron.cli import config_cmd
from novacron.config import config_from_mapping, load_example


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="novacron")
    sub = parser.add_subparsers(dest="command", required=True)
    config_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads os.environ; a NOVACRON_* variable in the developer's shell must not leak."""
    for name in list(os.environ):
        if name.upper().startswith("NOVACRON_"):
            monkeypatch.delenv(name)


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.yaml"
    path.write_text("dwcp:\n  forced_mode: hybrid\n", encoding="utf-8")
    return path


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text("dwcp:\n  transport:\n    congestion_algo: reno\n", encoding="utf-8")
    return path


def test_validate_ok(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "validate", str(good_file)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{good_file}: ok (mode hybrid; 4-256 streams cubic;")
    assert err == ""


def test_validate_error_exits_2_with_the_problem_on_stderr(
    bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["config", "validate", str(bad_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{bad_file}: dwcp.transport.congestion_algo: must be one of cubic, bbr, adaptive (got 'reno')\n"
    )
    assert "Traceback" not in err


def test_validate_reports_every_file(
    good_file: Path, bad_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"
    assert run(["config", "validate", str(bad_file), str(good_file), str(missing)]) == 2
    out, err = capsys.readouterr()
    assert f"{good_file}: ok" in out
    assert str(bad_file) in err
    assert f"{missing}: cannot read" in err


def test_validate_a_yaml_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("system: [\n", encoding="utf-8")
    assert run(["config", "validate", str(path)]) == 2
    assert f"{path}:2:" in capsys.readouterr().err


def test_validate_applies_the_environment_unless_told_not_to(
    good_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOVACRON_DWCP__TRANSPORT__MAX_STREAM", "8")
    assert run(["config", "validate", str(good_file)]) == 2
    assert "NOVACRON_DWCP__TRANSPORT__MAX_STREAM: unknown field" in capsys.readouterr().err
    assert run(["config", "validate", "--no-env", str(good_file)]) == 0


def test_validate_shipped_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import resources

    folder = resources.files("novacron.config.examples")
    for name in ("datacenter", "internet", "hybrid"):
        with resources.as_file(folder / f"{name}.yaml") as path:
            assert run(["config", "validate", str(path)]) == 0
    assert capsys.readouterr().out.count(": ok (") == 3


def test_show_an_example_with_an_environment_override(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOVACRON_NODE_ID", "dc2-node01")
    monkeypatch.setenv("NOVACRON_DWCP__TRANSPORT__MAX_STREAMS", "128")
    assert run(["config", "show", "--example", "datacenter"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# effective configuration: defaults < the datacenter example < environment")
    shown = config_from_mapping(yaml.safe_load(out), env={})
    expected = load_example("datacenter", env={})
    assert shown.system.node_id == "dc2-node01"
    assert shown.dwcp.transport.max_streams == 128
    assert shown.dwcp.consensus == expected.dwcp.consensus
    assert "heartbeat_interval: 50ms" in out


def test_show_without_env_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOVACRON_NODE_ID", "ignored")
    assert run(["config", "show", "--no-env", "--example", "internet"]) == 0
    shown = config_from_mapping(yaml.safe_load(capsys.readouterr().out), env={})
    assert shown == load_example("internet", env={})


def test_show_a_file(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "show", str(good_file)]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out)["dwcp"]["forced_mode"] == "hybrid"
    assert f"< {good_file} <" in out.splitlines()[0]


def test_show_defaults_when_given_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "show"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["system"]["node_id"] == "novacron-node-1"


def test_show_an_invalid_file_exits_2(bad_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "show", str(bad_file)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "dwcp.transport.congestion_algo" in err


def test_show_an_unknown_example_lists_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "show", "--example", "lan"]) == 2
    assert "available: datacenter, hybrid, internet" in capsys.readouterr().err


def test_list_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["config", "show", "--list-examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["datacenter", "hybrid", "internet"]
    assert all(len(line.split()) > 1 for line in lines)  # each with its description


def test_file_and_example_together_is_a_usage_error(good_file: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        run(["config", "show", str(good_file), "--example", "datacenter"])
    assert caught.value.code == 2


def test_config_needs_an_action() -> None:
    with pytest.raises(SystemExit) as caught:
        run(["config"])
    assert caught.value.code == 2
