"""Snapping toward the last value, its calibration on validation files, and the trimmed loss."""

import numpy as np
import pandas as pd
import pytest
import torch

from novacron.prediction.lstm import LSTMConfig, LSTMPredictor, _loss, choose_snap_tau, snap
from novacron.prediction.traces import split_by_file

TINY = dict(window=4, horizon=2, hidden=8, max_epochs=6, patience=3, batch_size=64, lr=1e-2)


def traces(n_files=6, length=50, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_files):
        x, values = 0.0, []
        for _ in range(length):
            x = 0.6 * x + rng.normal(0, 0.3)
            values.append(np.exp(1 + x))
        frame = pd.DataFrame({"mbps": values}, index=pd.Index(np.arange(length, dtype=float), name="time_s"))
        frame.attrs["name"] = f"snap_{i}"
        out.append(frame)
    return out


def test_hard_snap_zeroes_small_changes_and_keeps_large_ones():
    changes = np.array([[0.01, -0.2], [-0.04, 0.03], [0.3, -0.001]])
    snapped = snap(changes, [0.05, 0.1], "hard")
    np.testing.assert_array_equal(snapped, [[0.0, -0.2], [0.0, 0.0], [0.3, 0.0]])
    np.testing.assert_allclose(snap(changes, [0.05, 0.1], "soft"), [[0, -0.1], [0, 0], [0.25, 0]])
    np.testing.assert_array_equal(snap(changes, [0.0, 0.0], "hard"), changes)
    with pytest.raises(ValueError):
        snap(changes, [0.1], "hard")


def test_snapped_forecast_is_exactly_the_last_value_for_small_predicted_changes():
    data = traces()
    model = LSTMPredictor(LSTMConfig(seed=1, **TINY)).fit(data, progress=False)
    origins = np.arange(3, 40)
    raw = model._log_change(data[0], origins)
    assert np.abs(raw).max() > 0  # the trained model does predict changes
    model.config.snap_tau = [float(np.abs(raw).max()) + 1e-6] * 2
    forecast = model.forecast(data[0], origins, 2)
    last = data[0]["mbps"].to_numpy()[origins]
    np.testing.assert_array_equal(forecast, np.repeat(last[:, None], 2, axis=1))
    # a threshold between the changes keeps the large ones exactly as the raw network predicts
    tau = float(np.median(np.abs(raw[:, 0])))
    model.config.snap_tau = [tau, 0.0]
    forecast = model.forecast(data[0], origins, 2)
    small = np.abs(raw[:, 0]) < tau
    np.testing.assert_array_equal(forecast[small, 0], last[small])
    np.testing.assert_allclose(forecast[~small, 0], last[~small] * np.exp(raw[~small, 0]))
    np.testing.assert_allclose(forecast[:, 1], last * np.exp(raw[:, 1]))


def test_choose_snap_tau_picks_the_threshold_that_lowers_median_ape_and_prefers_zero_on_ties():
    rng = np.random.default_rng(0)
    n = 400
    # truth unchanged on 70% of the samples; the model predicts small noisy changes there
    true_ratio = np.where(rng.random(n) < 0.7, 1.0, np.exp(rng.normal(0, 0.5, n)))
    predicted = np.where(true_ratio == 1.0, rng.normal(0, 0.02, n), np.log(true_ratio))
    taus, scores = choose_snap_tau(predicted[:, None], true_ratio[:, None], [0.3, 0.0, 0.1])
    assert taus == [0.1]  # removes all the small noise: the median APE drops to 0 (0.3 only ties)
    assert scores[0] == pytest.approx(0.0)
    unsnapped = np.median(np.abs(np.exp(predicted) / true_ratio - 1))
    assert unsnapped > 0.005
    # a perfect model: snapping cannot help, so no snapping
    taus, _ = choose_snap_tau(np.log(true_ratio)[:, None], true_ratio[:, None], [0.0, 0.01, 0.1])
    assert taus == [0.0]


def test_calibration_in_fit_uses_only_the_validation_files():
    data = traces(n_files=8)
    config = LSTMConfig(seed=3, calibrate_snap=True, **TINY)
    model = LSTMPredictor(config).fit(data, progress=False)
    assert len(model.config.snap_tau) == 2 and len(model.report.snap_val_median_ape) == 2
    _, val = split_by_file(data, config.val_fraction, np.random.default_rng(config.seed))
    assert [t.attrs["name"] for t in val] == model.report.val_files
    chosen = list(model.config.snap_tau)
    # recalibrating on the same validation files gives the same thresholds ...
    assert model.calibrate_snap(val) == model.report.snap_val_median_ape
    assert model.config.snap_tau == chosen
    # ... and the thresholds follow the calibration data: on files where nothing ever changes
    # (truth = last value), any predicted change is wrong, so thresholds that snap everything win
    flat = [t.copy() for t in val]
    for t in flat:
        t["mbps"] = 2.0
    assert model.calibrate_snap(flat) == [0.0, 0.0]
    assert min(model.config.snap_tau) > 0
    np.testing.assert_array_equal(model.forecast(flat[0], np.arange(3, 40), 2), 2.0)


def test_new_config_fields_round_trip_through_save_and_load(tmp_path):
    config = LSTMConfig(
        seed=2, loss="trimmed", trim_fraction=0.4, snap_mode="soft", calibrate_snap=True, **TINY
    )
    model = LSTMPredictor(config).fit(traces(), progress=False)
    loaded = LSTMPredictor.load(model.save(tmp_path / "m.pt"))
    assert loaded.config == model.config
    assert loaded.config.snap_tau == model.config.snap_tau and loaded.config.snap_mode == "soft"
    data = traces(seed=5)[0]
    np.testing.assert_array_equal(loaded.predict(data, 2), model.predict(data, 2))
    # an old config without the new fields loads with snapping off
    old = LSTMConfig.from_json('{"window": 4, "horizon": 2}')
    assert old.snap_tau == [] and old.loss == "l1_log" and not old.calibrate_snap


def test_trimmed_loss_ignores_the_largest_errors():
    config = LSTMConfig(loss="trimmed", trim_fraction=0.5, horizon=1)
    target = torch.zeros(4, 1)
    output = torch.tensor([[0.1], [-0.2], [5.0], [-9.0]])
    assert float(_loss(output, target, config)) == pytest.approx(0.15)
    assert float(_loss(output, target, LSTMConfig(horizon=1))) == pytest.approx(3.575)


@pytest.mark.parametrize(
    "bad",
    [
        {"loss": "nope"},
        {"trim_fraction": 0.0},
        {"snap_mode": "medium"},
        {"snap_tau": [0.1]},
        {"snap_tau": [0.1, -0.1, 0, 0, 0]},
        {"snap_grid": []},
    ],
)
def test_invalid_new_options_are_rejected(bad):
    with pytest.raises(ValueError):
        LSTMConfig(**bad)


def test_robust_inputs_are_scale_free_causal_and_round_trip(tmp_path):
    from novacron.prediction.lstm import _windows

    config = LSTMConfig(window=4, horizon=2, robust_inputs=["median3", "median5", "abs_change5"])
    assert config.n_inputs == 4
    data = traces(n_files=1)[0]
    origins = np.array([3, 10, 20])
    x, _ = _windows(data, origins, config)
    mbps = data["mbps"].to_numpy()
    t = 10
    np.testing.assert_allclose(x[1, -1, 1], np.log(np.median(mbps[t - 2 : t + 1]) / mbps[t]), rtol=1e-5)
    np.testing.assert_allclose(x[1, -1, 2], np.log(np.median(mbps[t - 4 : t + 1]) / mbps[t]), rtol=1e-5)
    changes = np.abs(np.diff(np.log(mbps[t - 5 : t + 1])))
    np.testing.assert_allclose(x[1, -1, 3], np.median(changes), rtol=1e-5)
    # the same trace at another scale gives the same inputs; the future does not leak in
    scaled = data.copy()
    scaled["mbps"] *= 7.0
    scaled.iloc[21:, 0] = 1e3
    np.testing.assert_allclose(_windows(scaled, origins, config)[0], x, atol=1e-5)
    model = LSTMPredictor(LSTMConfig(seed=0, robust_inputs=["median3", "abs_change5"], **TINY))
    model.fit(traces(), progress=False)
    loaded = LSTMPredictor.load(model.save(tmp_path / "r.pt"))
    assert loaded.config.robust_inputs == ["median3", "abs_change5"]
    np.testing.assert_array_equal(loaded.predict(data, 2), model.predict(data, 2))


def test_an_untrained_median_anchored_model_is_the_median_filter(tmp_path):
    from novacron.prediction.lstm import _Net

    data = traces(n_files=1)[0]
    mbps = data["mbps"].to_numpy()
    origins = np.arange(4, 40)
    for m in (3, 5):
        model = LSTMPredictor(LSTMConfig(window=6, horizon=2, anchor=f"median{m}"))
        model.net = _Net(model.config)
        expected = np.array([np.median(mbps[t - m + 1 : t + 1]) for t in origins])
        np.testing.assert_allclose(model.forecast(data, origins, 2), np.stack([expected] * 2, 1), rtol=1e-5)
    # the default anchor is the last value, and the anchor is saved with the model
    plain = LSTMPredictor(LSTMConfig(window=6, horizon=2))
    plain.net = _Net(plain.config)
    np.testing.assert_array_equal(plain.forecast(data, origins, 1)[:, 0], mbps[origins])
    assert LSTMPredictor.load(model.save(tmp_path / "a.pt")).config.anchor == "median5"
    with pytest.raises(ValueError):
        LSTMConfig(window=4, anchor="median5")
