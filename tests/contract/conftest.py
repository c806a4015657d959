import importlib.util

import pytest
from harness import AsyncioHarness, SimHarness

_UVLOOP = pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")


@pytest.fixture(params=["sim", "asyncio", pytest.param("uvloop", marks=_UVLOOP)])
def harness(request, tmp_path):
    if request.param == "sim":
        h = SimHarness(tmp_path)
    else:
        h = AsyncioHarness(tmp_path, uvloop=request.param == "uvloop")
    yield h
    h.close()
