"""PBA: bandwidth prediction (classical predictors and an LSTM) on real traces."""
