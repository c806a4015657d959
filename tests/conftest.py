"""Suite-wide set-up: the suite is deterministic, and nothing a test does may leave files outside its
own temporary directories."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent / "contract"))
from harness import AsyncioHarness, SimHarness  # noqa: E402

# Property tests draw the same examples on every run (CI must not go red by luck). To explore new
# examples locally, run with ``--hypothesis-profile=explore``; a failing example found that way
# becomes an explicit regression test.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile("deterministic")


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_a_temporary_directory(tmp_path_factory):
    """Stable-Baselines3 creates a log folder for every model it builds (``/tmp/SB3-<date>``
    unless ``SB3_LOGDIR`` says otherwise); keep them in pytest's temporary directory."""
    previous = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3-logs"))
    yield
    if previous is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = previous


@pytest.fixture(params=["sim", "asyncio"])
def harness(request, tmp_path):
    """The same protocol code on both runtimes: a simulated cluster, or nodes on the asyncio backend
    over loopback (``tests/contract/harness.py``); stopped by the test's end. A test folder that
    needs more (uvloop, a seed, clean-up of its own) defines its own ``harness``."""
    h = (SimHarness if request.param == "sim" else AsyncioHarness)(tmp_path)
    yield h
    h.close()
