"""Classical predictors on hand-computed sequences, metrics on known values, the evaluation protocol."""

import numpy as np
import pandas as pd
import pytest

from novacron.prediction.evaluate import evaluate, origins_of, to_json_dict
from novacron.prediction.metrics import compute_metrics
from novacron.prediction.predictors import EWMA, HarmonicMean, LastValue, RobustMPC, classical_predictors


def test_last_value():
    np.testing.assert_allclose(LastValue().predict([1.0, 2.0, 3.0], 3), [3.0, 3.0, 3.0])


def test_ewma_by_hand():
    # s = 1; then 0.5*3 + 0.5*1 = 2; then 0.5*5 + 0.5*2 = 3.5
    assert EWMA(alpha=0.5).predict([1.0, 3.0, 5.0], 1)[0] == pytest.approx(3.5)
    assert EWMA(alpha=1.0).predict([1.0, 3.0, 5.0], 1)[0] == 5.0
    with pytest.raises(ValueError):
        EWMA(alpha=0.0)


def test_harmonic_mean_of_the_last_five():
    # last five: 1, 2, 4, 4, 4 -> 5 / (1 + 1/2 + 3/4) = 5 / 2.25
    assert HarmonicMean().predict([9.0, 1.0, 2.0, 4.0, 4.0, 4.0], 2)[1] == pytest.approx(5 / 2.25)
    assert HarmonicMean().predict([2.0], 1)[0] == pytest.approx(2.0)


def test_robust_mpc_discounts_by_the_max_recent_error():
    # one-step HM forecasts of samples 1..5 are all 2; sample 5 is 4 -> error |2 - 4| / 4 = 0.5
    history = [2.0, 2.0, 2.0, 2.0, 2.0, 4.0]
    robust = RobustMPC()
    assert robust.max_recent_error(np.array(history)) == pytest.approx(0.5)
    assert robust.predict(history, 1)[0] == pytest.approx((5 / 2.25) / 1.5)
    # a perfectly steady history is not discounted; a single sample has no past forecast
    assert robust.predict([3.0] * 8, 1)[0] == pytest.approx(3.0)
    assert robust.predict([3.0], 1)[0] == pytest.approx(3.0)


def test_metrics_on_known_values():
    metrics = compute_metrics(np.array([1.1, 2.0, 3.9, 5.0]), np.array([1.0, 2.0, 3.0, 0.0]))
    # APEs (truth > 0 only): 0.1, 0, 0.3
    assert metrics.median_ape == pytest.approx(0.1)
    assert metrics.mean_ape == pytest.approx(0.4 / 3)
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert metrics.mae == pytest.approx((0.1 + 0 + 0.9 + 5) / 4)
    assert metrics.rmse == pytest.approx(np.sqrt((0.01 + 0.81 + 25) / 4))
    assert (metrics.n, metrics.n_ape) == (4, 3)


def test_horizon_k_scores_the_kth_step_on_shared_origins():
    trace = pd.DataFrame({"mbps": np.arange(1.0, 21.0)})  # 1, 2, ..., 20
    assert list(origins_of(20, 3, 5)) == list(range(2, 15))
    table = evaluate([LastValue()], [trace], horizons=(1, 5), min_history=3).set_index("horizon")
    t = np.arange(2, 15)
    np.testing.assert_allclose(table.loc[1, "mean_ape"], np.mean(1 / (t + 2)))  # x_t = t+1, x_{t+1} = t+2
    np.testing.assert_allclose(table.loc[5, "mean_ape"], np.mean(5 / (t + 6)))
    assert table.loc[1, "n"] == table.loc[5, "n"] == 13


def test_json_dict_has_every_predictor_and_horizon():
    trace = pd.DataFrame({"mbps": np.linspace(1, 3, 40)})
    trace.attrs["name"] = "ramp"
    table = evaluate(classical_predictors(), [trace])
    out = to_json_dict(table, [trace], 10)
    assert set(out["predictors"]) == {"last_value", "ewma", "harmonic_mean", "robust_mpc"}
    assert set(out["predictors"]["ewma"]) == {"1", "5"}
    assert {"median_ape", "mean_ape", "mae", "rmse", "accuracy"} <= set(out["predictors"]["ewma"]["5"])
