import pytest
from harness import AsyncioHarness, SimHarness


@pytest.fixture(params=["sim", "asyncio"])
def harness(request, tmp_path):
    h = (SimHarness if request.param == "sim" else AsyncioHarness)(tmp_path)
    yield h
    h.close()
