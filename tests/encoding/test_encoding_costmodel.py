"""The cost model: ships calibrated, is physically sane, answers the simulator's questions."""

import itertools

import pytest

from novacron.encoding import CONTENT_CLASSES, CostModel
from novacron.encoding.calibration import calibrate

MODEL = CostModel.load()


def test_shipped_model_covers_every_codec_and_class():
    assert MODEL.levels("none") == [0]
    assert {0, 9, 16} <= set(MODEL.levels("lz4"))
    assert {-5, 1, 3, 9, 19, 22} <= set(MODEL.levels("zstd"))
    for codec, level, content in itertools.product(("none", "lz4", "zstd"), (0, 3), CONTENT_CLASSES):
        assert MODEL.cost(codec, level, content)
    assert MODEL.machine and "calibrate_encoding.py" in MODEL.meta["how"]


def test_figures_are_sane():
    for (codec, level, content), cost in MODEL.codecs.items():
        assert 1e5 < cost.compress_bytes_per_s < 1e11, (codec, level, content)
        assert 1e6 < cost.decompress_bytes_per_s < 1e11, (codec, level, content)
        assert 0 < cost.ratio <= 1.01, (codec, level, content)
    assert MODEL.cost("zstd", 3, "zero").ratio < 0.01
    assert MODEL.cost("zstd", 3, "random").ratio > 0.99
    assert MODEL.cost("zstd", 3, "text").ratio < 0.5
    assert MODEL.cost("none", 0, "text").ratio == pytest.approx(1.0, abs=0.01)


def test_higher_levels_compress_better_and_slower():
    low, high = MODEL.cost("zstd", 1, "text"), MODEL.cost("zstd", 19, "text")
    assert high.ratio < low.ratio and high.compress_bytes_per_s < low.compress_bytes_per_s / 10
    assert MODEL.cost("lz4", 16, "text").ratio < MODEL.cost("lz4", 0, "text").ratio


def test_uncalibrated_levels_use_the_nearest_calibrated_one():
    assert MODEL.cost("zstd", 4, "mixed") in (MODEL.cost("zstd", 3, "mixed"), MODEL.cost("zstd", 5, "mixed"))
    assert MODEL.cost("zstd", -131072, "mixed") == MODEL.cost("zstd", min(MODEL.levels("zstd")), "mixed")
    with pytest.raises(KeyError, match="brotli"):
        MODEL.cost("brotli", 1)
    with pytest.raises(KeyError, match="video"):
        MODEL.cost("zstd", 3, "video")


def test_simulator_charges_size_over_throughput():
    cost = MODEL.cost("zstd", 3, "mixed")
    assert MODEL.compress_seconds("zstd", 3, 1 << 20) == pytest.approx((1 << 20) / cost.compress_bytes_per_s)
    assert MODEL.decompress_seconds("zstd", 3, 1 << 20) == pytest.approx(
        (1 << 20) / cost.decompress_bytes_per_s
    )
    assert MODEL.encoded_bytes("zstd", 3, 1000) == round(1000 * cost.ratio)


def test_delta_methods_are_calibrated_on_resent_pages():
    for method in ("xbzrle", "rsync"):
        for changed in (0.01, 0.05, 0.10):
            delta = MODEL.delta(method, changed)
            assert delta.changed == changed and 0 < delta.ratio < 0.5 and delta.encode_bytes_per_s > 0
    assert MODEL.delta("xbzrle", 0.01).ratio < MODEL.delta("xbzrle", 0.10).ratio


def test_save_and_load_round_trip(tmp_path):
    MODEL.save(tmp_path / "model.json")
    assert CostModel.load(tmp_path / "model.json") == MODEL


def test_calibration_takes_its_clock_as_a_parameter():
    ticks = itertools.count()
    model = calibrate(
        lambda: next(ticks) * 0.001,  # every call 1 ms later: each timed call "takes" 1 ms
        nbytes=8192,
        levels={"none": [0], "zstd": [1, 3]},
        delta_pages=2,
        repeats=2,
        machine="fake",
    )
    assert model.levels("zstd") == [1, 3]
    assert model.cost("zstd", 1, "text").compress_bytes_per_s == pytest.approx(8192 / 0.001)
    assert model.delta("rsync", 0.05).encode_bytes_per_s == pytest.approx(2 * 4096 / 0.001)
    assert model.machine == "fake"
