"""What a real node does with each setting: an explicit choice it cannot honour is refused, a
security property it does not provide is a warning, an ignored knob is listed; the defaults ask
for nothing it lacks but encryption at rest, which it says it does not do."""

from __future__ import annotations

import subprocess
import sys

import pytest

from novacron.cli import main as novacron
from novacron.config import config_from_mapping
from novacron.config.support import IGNORED, check_support


def report(data: dict):
    return check_support(config_from_mapping(data, env={}))


def test_the_default_configuration_is_refused_nothing_and_warned_about_encryption_only():
    r = report({})
    assert r.refused == [] and r.ignored == []
    assert len(r.warnings) == 1 and "state at rest is NOT encrypted" in r.warnings[0]
    assert report({"security": {"enable_encryption": False}}).warnings == []


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_a_storage_backend_the_node_does_not_have_is_refused(backend):
    (problem,) = report({"storage": {"backend": backend}}).refused
    assert problem.startswith(f"storage.backend: {backend} is not implemented")


def test_token_authentication_is_refused_and_authentication_without_tls_is_a_warning():
    (problem,) = report({"security": {"auth_method": "token"}}).refused
    assert "security.auth_method: token is not implemented" in problem
    r = report({"network": {"enable_tls": False}})
    assert any("peers are NOT authenticated" in w for w in r.warnings)
    assert not any("authenticated" in w for w in report({"security": {"enable_auth": False}}).warnings)


def test_every_knob_the_node_ignores_is_listed_when_set():
    r = report(
        {
            "system": {"max_concurrency": 7},
            "monitoring": {"enable_tracing": True},
            "dwcp": {"enable_v3_transport": True, "v3_rollout_percentage": 10},
        }
    )
    assert [line.split(":")[0] for line in r.ignored] == [
        "system.max_concurrency",
        "monitoring.enable_tracing",
        "dwcp.v3_rollout_percentage",
        "dwcp.enable_v3_transport",
    ]
    assert all(path.count(".") >= 1 for path in IGNORED)


def test_config_validate_prints_the_report_and_refuses_what_the_node_would(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("system:\n  max_concurrency: 7\n")
    bad.write_text("storage:\n  backend: postgres\n")
    assert novacron(["config", "validate", str(good), "--no-env"]) == 0
    out = capsys.readouterr().out
    assert "warning: security.enable_encryption" in out and "ignored: system.max_concurrency: 7" in out
    assert novacron(["config", "validate", str(bad), "--no-env"]) == 2
    assert "storage.backend: postgres is not implemented" in capsys.readouterr().err


def test_a_node_asked_for_postgres_does_not_start(tmp_path):
    config = tmp_path / "node.yaml"
    config.write_text(f"system:\n  data_dir: {tmp_path}\nstorage:\n  backend: postgres\n")
    done = subprocess.run(
        [sys.executable, "-m", "novacron", "node", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "storage.backend: postgres is not implemented" in done.stderr
