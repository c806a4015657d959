"""The LSTM: deterministic training, early stopping, save/load, extra inputs, last-value start."""

import numpy as np
import pandas as pd
import pytest
import torch

from novacron.prediction.lstm import LSTMConfig, LSTMPredictor, _Net, coarsen


def synthetic_traces(n_files=6, length=60, seed=0, extras=False):
    """Mean-reverting log throughput, one level per file (so the model has something to learn)."""
    rng = np.random.default_rng(seed)
    traces = []
    for i in range(n_files):
        level, x, values = rng.uniform(0, 2), 0.0, []
        for _ in range(length):
            x = 0.6 * x + rng.normal(0, 0.3)
            values.append(np.exp(level + x))
        frame = pd.DataFrame({"mbps": values}, index=pd.Index(np.arange(length, dtype=float), name="time_s"))
        if extras:
            frame["latency_ms"] = rng.uniform(20, 80, length)
        frame.attrs["name"] = f"synthetic_{i}"
        traces.append(frame)
    return traces


TINY = dict(window=4, horizon=2, hidden=8, max_epochs=12, patience=3, batch_size=64, lr=1e-2)


def test_same_seed_same_weights_and_predictions():
    traces = synthetic_traces()
    a = LSTMPredictor(LSTMConfig(seed=7, **TINY)).fit(traces, progress=False)
    b = LSTMPredictor(LSTMConfig(seed=7, **TINY)).fit(traces, progress=False)
    for (name, wa), (_, wb) in zip(a.net.state_dict().items(), b.net.state_dict().items(), strict=True):
        assert torch.equal(wa, wb), name
    np.testing.assert_array_equal(a.predict(traces[0], 2), b.predict(traces[0], 2))
    c = LSTMPredictor(LSTMConfig(seed=8, **TINY)).fit(traces, progress=False)
    assert not torch.equal(a.net.head.weight, c.net.head.weight)


def test_training_does_not_touch_the_global_torch_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    LSTMPredictor(LSTMConfig(**TINY)).fit(synthetic_traces(n_files=3), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_fires_and_keeps_the_best_epoch():
    config = LSTMConfig(**{**TINY, "max_epochs": 300, "patience": 2, "lr": 5e-2})
    model = LSTMPredictor(config).fit(synthetic_traces(), progress=False)
    report = model.report
    assert report.stopped_early and len(report.val_loss) < 300
    assert report.val_loss[report.best_epoch] == min(report.val_loss)
    assert len(report.val_loss) - 1 - report.best_epoch == 2
    assert not set(report.train_files) & set(report.val_files)


def test_save_and_load_give_identical_predictions(tmp_path):
    traces = synthetic_traces()
    model = LSTMPredictor(LSTMConfig(**TINY)).fit(traces, progress=False)
    path = model.save(tmp_path / "model.pt")
    loaded = LSTMPredictor.load(path)
    assert loaded.config == model.config
    origins = np.arange(3, 50)
    np.testing.assert_array_equal(
        model.forecast(traces[1], origins, 2), loaded.forecast(traces[1], origins, 2)
    )
    with pytest.raises(ValueError, match="forecasts 2 steps"):
        loaded.forecast(traces[1], origins, 3)


def test_an_untrained_head_is_the_last_value_predictor():
    config = LSTMConfig(window=5, horizon=3)
    model = LSTMPredictor(config)
    model.net = _Net(config)
    np.testing.assert_allclose(model.predict([1.0, 4.0, 2.5], 3), [2.5, 2.5, 2.5], rtol=1e-6)


def test_extra_columns_become_inputs_when_present():
    traces = synthetic_traces(n_files=4, extras=True)
    model = LSTMPredictor(LSTMConfig(**TINY)).fit(traces, progress=False)
    assert model.config.extra_features == ["latency_ms"] and model.config.n_inputs == 2
    assert model.predict(traces[0], 1).shape == (1,)
    with pytest.raises(ValueError, match="latency_ms"):
        model.predict(traces[0][["mbps"]], 1)


def test_untrained_model_and_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(RuntimeError, match="not trained"):
        LSTMPredictor().predict([1.0, 2.0], 1)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a NovaCron"):
        LSTMPredictor.load(tmp_path / "other.pt")


def test_coarsen_averages_blocks():
    trace = pd.DataFrame({"mbps": [1.0, 3.0, 5.0, 7.0, 9.0]})
    assert list(coarsen(trace, 2)["mbps"]) == [2.0, 6.0]
