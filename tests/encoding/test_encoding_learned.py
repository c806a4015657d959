"""The learned selector: deterministic training, save/load, and no worse than always zstd-3."""

import numpy as np
import pytest

from novacron.encoding import CostModel, RuleSelector
from novacron.encoding.learned import FEATURE_NAMES, LearnedSelector, measure_samples, train

pytest.importorskip("torch")
MODEL = CostModel.load()


@pytest.fixture(scope="module")
def train_set():
    return measure_samples(MODEL, seed=11, buffers=60, links_per_buffer=8)


@pytest.fixture(scope="module")
def held_out():
    return measure_samples(MODEL, seed=12, buffers=30, links_per_buffer=8)


@pytest.fixture(scope="module")
def learned(train_set):
    return LearnedSelector.fit(train_set, MODEL, seed=0, epochs=400)


def test_samples_are_reproducible_from_their_seed(train_set):
    again = measure_samples(MODEL, seed=11, buffers=60, links_per_buffer=8)
    assert np.array_equal(again.x, train_set.x) and np.array_equal(again.seconds, train_set.seconds)
    assert train_set.x.shape == (480, len(FEATURE_NAMES))
    assert train_set.seconds.shape == (480, len(train_set.candidates))


def test_training_is_deterministic(train_set, learned):
    again = train(train_set, seed=0, epochs=400)
    assert all(np.array_equal(a, b) for a, b in zip(again, learned.layers, strict=True))


def test_save_and_load_give_the_same_decisions(tmp_path, learned, held_out):
    learned.save(tmp_path / "model.json")
    loaded = LearnedSelector.load(tmp_path / "model.json", cost_model=MODEL)
    assert np.array_equal(loaded.pick(held_out.x), learned.pick(held_out.x))
    assert loaded.candidates == learned.candidates


def test_learned_is_at_least_as_good_as_always_zstd3_on_held_out_samples(learned, held_out):
    zstd3 = held_out.mean_normalised_time([held_out.index("zstd", 3)] * len(held_out.x))
    ours = held_out.mean_normalised_time(learned.pick(held_out.x))
    assert ours <= zstd3
    assert ours < 1.1  # within 10 % of the best candidate on average


def test_the_rule_based_baseline_is_also_evaluated_on_the_same_samples(held_out):
    rule = held_out.mean_normalised_time(held_out.picks(RuleSelector(MODEL)))
    assert rule < held_out.mean_normalised_time([held_out.index("none", 0)] * len(held_out.x))


def test_the_shipped_model_loads_and_beats_always_zstd3(held_out):
    shipped = LearnedSelector.load(cost_model=MODEL)
    zstd3 = held_out.mean_normalised_time([held_out.index("zstd", 3)] * len(held_out.x))
    assert held_out.mean_normalised_time(held_out.picks(shipped)) <= zstd3


def test_a_model_for_other_features_is_refused(tmp_path, learned):
    path = tmp_path / "model.json"
    path.write_text(learned.to_json().replace("entropy/8", "something_else"))
    with pytest.raises(ValueError, match="model expects features"):
        LearnedSelector.load(path, cost_model=MODEL)
