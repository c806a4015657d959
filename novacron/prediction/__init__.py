"""PBA: bandwidth prediction (classical predictors and an LSTM) on real traces.

Modules (imported explicitly, so ``import novacron.prediction`` never loads torch):

* :mod:`~novacron.prediction.traces`: load ``time Mbps`` and mahimahi files into DataFrames, split by file;
* :mod:`~novacron.prediction.predictors`: the ``Predictor`` interface and last value, EWMA, harmonic
  mean (MPC), RobustMPC;
* :mod:`~novacron.prediction.lstm`: the torch LSTM (train, early stopping, save/load with its config);
* :mod:`~novacron.prediction.metrics` and :mod:`~novacron.prediction.evaluate`: median/mean APE, MAE,
  RMSE and +-20% accuracy at chosen horizons, as a DataFrame or the CLI's JSON;
* :mod:`~novacron.prediction.allocation`: allocators (per-transfer shares and AMST stream counts);
* :mod:`~novacron.prediction.transfers`: an allocator sharing a link among AMST transfers with
  deadlines, on either runtime (``AllocatedSender`` / ``AllocatedReceiver``).
"""
