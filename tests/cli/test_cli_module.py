"""``python -m novacron`` is the same command as the ``novacron`` script."""

import subprocess
import sys


def test_python_dash_m_novacron_runs_the_command_line():
    done = subprocess.run(
        [sys.executable, "-m", "novacron", "config", "validate", "/nonexistent/novacron.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "/nonexistent/novacron.yaml" in done.stderr


def test_python_dash_m_novacron_without_a_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "novacron"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "usage: novacron" in done.stderr
