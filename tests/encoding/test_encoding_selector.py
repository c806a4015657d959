"""Adaptive selection: compress only when it makes the transfer faster."""

import pytest

from novacron.config.schema import CompressionConfig
from novacron.encoding import (
    CostModel,
    Encoder,
    Kind,
    MemoryGenerator,
    RuleSelector,
    decode,
    estimate,
    make_selector,
    parse_header,
)
from novacron.encoding.selector import blend, stage_seconds, transfer_seconds

GEN = MemoryGenerator(seed=6)
MODEL = CostModel.load()
TEXT = GEN.memory(32, {"text": 1.0})
RANDOM = GEN.memory(32, {"random": 1.0})
MIXED = GEN.memory(32)
GBIT = 1e9


def test_features_classify_sampled_pages():
    assert estimate(TEXT).text_share == 1.0 and estimate(RANDOM).random_share == 1.0
    mixed = estimate(GEN.memory(8, {"zero": 0.5, "random": 0.5}))
    assert mixed.zero_share + mixed.random_share == 1.0 and not mixed.all_zero
    assert estimate(bytes(1 << 16)).all_zero
    assert estimate(TEXT).sample_ratio < 0.7 < estimate(RANDOM).sample_ratio
    assert estimate(b"").size == 0


@pytest.mark.parametrize(
    "selector", [RuleSelector(MODEL), make_selector(True, MODEL)], ids=["rule", "learned"]
)
class TestClearCutDecisions:
    def test_very_fast_link_and_random_data_sends_it_as_is(self, selector):
        assert selector.choose(RANDOM, 100 * GBIT).codec == "none"

    def test_very_fast_link_sends_even_text_uncompressed(self, selector):
        assert selector.choose(TEXT, 400 * GBIT).codec == "none"

    def test_slow_link_and_text_compresses_with_zstd(self, selector):
        choice = selector.choose(TEXT, 10e6)
        assert choice.codec == "zstd" and choice.seconds < choice.raw_seconds / 2

    def test_zero_pages_become_a_zero_page_marker(self, selector):
        choice = selector.choose(bytes(1 << 16), 10e6)
        assert choice.zero and choice.ratio == 0.0


def test_random_data_is_not_compressed_even_on_a_slow_link():
    # Nothing to gain: a codec would only add CPU time.
    assert RuleSelector(MODEL).choose(RANDOM, 10e6).codec == "none"


def test_faster_links_never_get_slower_codecs():
    rule = RuleSelector(MODEL)
    speeds = [
        MODEL.cost(c.codec, c.level, "text").compress_bytes_per_s
        for c in (rule.choose(TEXT, link) for link in (1e6, 1e7, 1e8, 1e9, 1e10, 1e11))
    ]
    assert speeds == sorted(speeds)


def test_compression_must_save_min_gain_or_the_bytes_go_as_they_are():
    features = estimate(MIXED)
    best = RuleSelector(MODEL, min_gain=0.0).choose(features, GBIT)
    saving = 1 - best.seconds / best.raw_seconds
    assert best.codec != "none" and saving > 0.02
    assert RuleSelector(MODEL, min_gain=saving - 0.01).choose(features, GBIT).codec == best.codec
    assert RuleSelector(MODEL, min_gain=saving + 0.01).choose(features, GBIT).codec == "none"


def test_pipelined_time_is_the_slowest_stage_and_serial_the_sum():
    cost = blend(MODEL, "zstd", 3, {"text": 1.0})
    stages = stage_seconds(cost, 1 << 20, 1e9)
    assert transfer_seconds(stages) == max(stages)
    assert transfer_seconds(stages, pipelined=False) == pytest.approx(sum(stages))
    assert stages[1] == pytest.approx((1 << 20) * cost.ratio * 8 / 1e9)


def test_serial_model_is_more_reluctant_to_compress():
    features = estimate(TEXT)
    for link in (1e8, 1e9, 1e10):
        pipelined = RuleSelector(MODEL).choose(features, link)
        serial = RuleSelector(MODEL, pipelined=False).choose(features, link)
        assert serial.seconds >= pipelined.seconds


def test_blend_adds_times_and_averages_ratios():
    half = blend(MODEL, "zstd", 3, {"text": 0.5, "random": 0.5})
    text, rand = MODEL.cost("zstd", 3, "text"), MODEL.cost("zstd", 3, "random")
    assert half.ratio == pytest.approx((text.ratio + rand.ratio) / 2)
    assert 1 / half.compress_bytes_per_s == pytest.approx(
        0.5 / text.compress_bytes_per_s + 0.5 / rand.compress_bytes_per_s
    )


def test_link_rate_must_be_positive():
    with pytest.raises(ValueError, match="link_bps"):
        RuleSelector(MODEL).choose(TEXT, 0)


# -- the Encoder facade ---------------------------------------------------------------------------


def test_encoder_from_config_uses_the_configured_codec_without_a_link_rate():
    encoder = Encoder.from_config(CompressionConfig(algorithm="lz4", level=9), MODEL)
    encoded = encoder.encode(TEXT)
    header = parse_header(encoded.frame)
    assert (header.codec.name, header.level, encoded.choice) == ("lz4", 9, None)
    assert encoder.decode(encoded.frame) == TEXT and encoded.ratio < 0.6


def test_encoder_adapts_to_the_link_when_given_one():
    encoder = Encoder(cost_model=MODEL)
    assert parse_header(encoder.encode(TEXT, link_bps=400 * GBIT).frame).codec.name == "none"
    slow = encoder.encode(TEXT, link_bps=10e6)
    assert slow.choice.codec == "zstd" and parse_header(slow.frame).codec.name == "zstd"


def test_encoder_sends_deltas_against_a_base():
    encoder = Encoder(cost_model=MODEL)
    page = GEN.page("text")
    resent = GEN.resend(page, 0.05)
    same_size = encoder.encode(resent, base=page)
    shifted = encoder.encode(b"new header" + page, base=page)
    assert (same_size.delta, shifted.delta) == ("xbzrle", "rsync")
    assert encoder.decode(same_size.frame, page) == resent
    assert encoder.decode(shifted.frame, page) == b"new header" + page
    assert parse_header(Encoder(enable_delta=False).encode(resent, base=page).frame).kind == Kind.PLAIN


def test_encoder_with_enable_ml_model_uses_the_learned_selector():
    from novacron.encoding.learned import LearnedSelector

    assert isinstance(Encoder(enable_ml_model=True, cost_model=MODEL).selector, LearnedSelector)
    assert isinstance(Encoder(cost_model=MODEL).selector, RuleSelector)


def test_config_with_algorithm_none_and_the_default_level_encodes():
    encoder = Encoder.from_config(CompressionConfig(algorithm="none"))
    assert decode(encoder.encode(TEXT).frame) == TEXT
