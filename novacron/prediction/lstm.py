"""An LSTM bandwidth predictor (torch): model, training with early stopping, save and load.

What it sees and predicts (why it can generalise across networks)
------------------------------------------------------------------
The HSDPA traces run at about 1.5 Mbps with 1 s samples; the FCC ones at other levels with 5 s
samples. A model fed raw Mbps would learn the scale of its training network. So every input window
is normalised by its *last* sample ``x_t``: the inputs are ``log(x_i / x_t)`` for the last
``window`` samples, and the outputs are ``log(x_{t+j} / x_t)`` for ``j = 1 .. horizon`` (all in one
shot, not fed back step by step). The forecast is ``x_t * exp(output)``. The output layer starts at
zero, so an untrained model *is* the last-value predictor and training only learns corrections
(mean reversion after a spike, damping of noise) that are relative, hence portable.

The default loss is the absolute error in log space, whose minimiser is the conditional *median*,
matching the headline metric (median absolute percentage error).

Snapping toward the last value
------------------------------
Median APE rewards being nearly exactly right on the majority of forecasts; where the truth usually
stays close to ``x_t``, a small learned correction can cost more than it gains. With ``snap_tau``
(one threshold per step ahead, in log units) a predicted log change smaller than the threshold is
replaced by 0, i.e. the forecast is exactly the last value ("hard"), or every change is shrunk by the
threshold ("soft"). With ``calibrate_snap`` the thresholds are chosen after training on the
validation files of the *training* data (never on test data) and saved in the config, so they are
part of the model. The default (no thresholds) keeps the raw network output.

Anchor
------
By default the output is a correction to the last value ``x_t``. With ``anchor="median3"`` or
``"median5"`` it is a correction to the median of the last 3 or 5 samples (still expressed as
``log(x_{t+j} / x_t)``), so the untrained model is that median filter instead; which anchor suits a
network is for validation on the training files to decide (``experiments/pba_select.py``).

Extra inputs
------------
If every training trace has some of the columns in :data:`KNOWN_EXTRAS` (``latency_ms``, ``loss``,
``time_of_day`` in seconds since midnight), they are added as inputs: the first two standardised
with the training mean and std, the time of day as its sine and cosine. The chosen columns are saved
in the config, and a trace given to ``predict`` must have them.

Determinism
-----------
Weights are initialised under ``torch.manual_seed(seed)`` inside :func:`torch.random.fork_rng` (the
caller's global torch RNG is left untouched), batches are shuffled by a seeded ``torch.Generator``,
and the validation traces are chosen by file with ``numpy.random.default_rng(seed)``: the same
traces and config give the same weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from novacron.prediction.predictors import FLOOR_MBPS, Predictor, mbps_of
from novacron.prediction.traces import MBPS, split_by_file

#: optional per-sample inputs the LSTM uses when every training trace has them
KNOWN_EXTRAS = ("latency_ms", "loss", "time_of_day")
_SECONDS_PER_DAY = 86_400.0
#: torch intra-op threads while training or predicting. The model is tiny, so extra threads only add
#: synchronisation; on a busy machine two OpenMP threads made training ~100x slower than one.
TORCH_THREADS = 1
_FILE_FORMAT = "novacron-pba-lstm/1"
#: training losses (see ``LSTMConfig.loss``)
LOSSES = ("l1_log", "ape", "welsch", "trimmed")
#: default candidate snapping thresholds on the predicted log change (0.05 is about a 5% change)
SNAP_GRID = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
#: optional scale-free inputs per time step i: "median3"/"median5" = log of the running median of the
#: last 3/5 samples up to i over x_t (a level estimate robust to one-sample spikes), "abs_change5" =
#: the running median of |log(x_s / x_{s-1})| over the last 5 steps up to i (recent volatility)
ROBUST_INPUTS = ("median3", "median5", "abs_change5")
#: levels the network's output can be relative to (``LSTMConfig.anchor``)
ANCHORS = ("last", "median3", "median5")


@dataclass
class LSTMConfig:
    """Everything needed to rebuild a trained model (saved next to its weights)."""

    window: int = 10  # samples of history per forecast (FCC files have only ~38 samples)
    horizon: int = 5  # steps forecast at once; evaluation may ask for 1 .. horizon
    hidden: int = 32
    layers: int = 1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 80
    patience: int = 8  # epochs without validation improvement before stopping
    val_fraction: float = 0.2  # share of training *files* held out for early stopping
    seed: int = 0
    #: "l1_log": |e| with e = log(pred/truth); "ape": |pred/truth - 1|; "welsch": a bounded loss
    #: (c^2/2)(1 - exp(-(e/c)^2)) with c = ``welsch_scale`` that spends the model's capacity on the
    #: bulk of the samples (what the *median* APE measures) rather than on unpredictable outliers;
    #: "trimmed": per step ahead, the mean |e| over the ``trim_fraction`` smallest errors of the
    #: batch (least trimmed absolute deviations: only the bulk that sets the median counts)
    loss: str = "l1_log"
    welsch_scale: float = 0.15
    #: time-scale augmentation: also train on each training trace averaged over blocks of s samples, for
    #: each s here (1 = as is), so the model sees coarser networks (FCC's 5 s vs HSDPA's ~1 s samples)
    augment_scales: list[int] = field(default_factory=lambda: [1])
    #: extra input columns; None = every one of KNOWN_EXTRAS present in all training traces
    extra_features: list[str] | None = None
    #: per extra column (standardised ones): training mean and std, filled in by ``fit``
    extra_stats: dict[str, list[float]] = field(default_factory=dict)
    #: share of each batch's smallest errors (per step ahead) averaged by the "trimmed" loss
    trim_fraction: float = 0.5
    #: snapping toward the last value (see "Snapping" in the module docstring): per step ahead
    #: ``j = 1 .. horizon``, a threshold on the predicted log change; empty = no snapping
    snap_tau: list[float] = field(default_factory=list)
    #: "hard": |change| < tau becomes exactly 0 (the last value); "soft": |change| shrinks by tau
    snap_mode: str = "hard"
    #: after training, choose ``snap_tau`` per step on the validation *files* of the training data
    calibrate_snap: bool = False
    #: the thresholds tried by ``calibrate_snap`` (0 = no snapping is always a candidate)
    snap_grid: list[float] = field(default_factory=lambda: list(SNAP_GRID))
    #: scale-free robust inputs per time step (see :data:`ROBUST_INPUTS`); empty = none
    robust_inputs: list[str] = field(default_factory=list)
    #: what the network's output corrects (see "Anchor" in the module docstring): "last" (x_t, the
    #: default) or "median3"/"median5" (the median of the last 3/5 samples)
    anchor: str = "last"

    def __post_init__(self) -> None:
        if self.window < 1 or self.horizon < 1:
            raise ValueError("window and horizon must be at least 1")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} (use one of {', '.join(LOSSES)})")
        if not 0 < self.trim_fraction <= 1:
            raise ValueError(f"trim_fraction must be in (0, 1], got {self.trim_fraction}")
        if self.snap_mode not in ("hard", "soft"):
            raise ValueError(f"unknown snap_mode {self.snap_mode!r} (use hard or soft)")
        if self.snap_tau and (len(self.snap_tau) != self.horizon or min(self.snap_tau) < 0):
            raise ValueError("snap_tau needs one non-negative threshold per step ahead (or none)")
        if set(self.robust_inputs) - set(ROBUST_INPUTS):
            raise ValueError(f"unknown robust inputs {self.robust_inputs}; known: {list(ROBUST_INPUTS)}")
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r} (use one of {', '.join(ANCHORS)})")
        if self.anchor != "last" and self.window < int(self.anchor.removeprefix("median")):
            raise ValueError(f"anchor {self.anchor} needs a window of at least that many samples")
        if not self.snap_grid or min(self.snap_grid) < 0:
            raise ValueError("snap_grid must be a non-empty list of non-negative thresholds")
        if not self.augment_scales or min(self.augment_scales) < 1:
            raise ValueError("augment_scales must be a non-empty list of integers >= 1")
        unknown = set(self.extra_features or ()) - set(KNOWN_EXTRAS)
        if unknown:
            raise ValueError(f"unknown extra features {sorted(unknown)}; known: {list(KNOWN_EXTRAS)}")

    @property
    def n_inputs(self) -> int:
        extras = self.extra_features or []
        return 1 + len(self.robust_inputs) + sum(2 if name == "time_of_day" else 1 for name in extras)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LSTMConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class _Net(nn.Module):
    """LSTM over the window, then a linear head mapping the last hidden state to ``horizon`` outputs."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(config.n_inputs, config.hidden, config.layers, batch_first=True)
        self.head = nn.Linear(config.hidden, config.horizon)
        nn.init.zeros_(self.head.weight)  # start as the last-value predictor (see module docstring)
        nn.init.zeros_(self.head.bias)
        self.anchor_samples = 0 if config.anchor == "last" else int(config.anchor.removeprefix("median"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        correction = self.head(out[:, -1, :])
        if self.anchor_samples:  # log(median of the last m samples / x_t); odd m, so a true median
            correction = correction + x[:, -self.anchor_samples :, 0].median(dim=1).values[:, None]
        return correction


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the caller's setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _extra_columns(trace: pd.DataFrame, config: LSTMConfig) -> list[np.ndarray]:
    columns = []
    for name in config.extra_features or []:
        if name not in trace.columns:
            raise ValueError(
                f"trace {trace.attrs.get('name', '?')} lacks column {name!r}, which the model was trained on"
            )
        values = trace[name].to_numpy(dtype=float)
        if name == "time_of_day":
            angle = 2 * math.pi * values / _SECONDS_PER_DAY
            columns += [np.sin(angle), np.cos(angle)]
        else:
            mean, std = config.extra_stats[name]
            columns.append((values - mean) / std)
    return columns


def _robust_column(log_mbps: np.ndarray, name: str) -> np.ndarray:
    """One of :data:`ROBUST_INPUTS` at every position, using only samples up to that position."""
    if name == "abs_change5":
        changes = np.abs(np.diff(log_mbps, prepend=log_mbps[0]))
        values, m = changes, 5
    else:
        values, m = log_mbps, int(name.removeprefix("median"))
    padded = np.concatenate([np.full(m - 1, values[0]), values])
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, m), axis=1)


def _windows(trace: pd.DataFrame, origins: np.ndarray, config: LSTMConfig) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(len(origins), window, n_inputs)`` and the reference level ``x_t`` of each origin.

    An origin with fewer than ``window`` samples of history is padded by repeating the first sample.
    """
    mbps = np.maximum(mbps_of(trace), FLOOR_MBPS)
    pad = config.window - 1
    log_mbps = np.log(np.concatenate([np.full(pad, mbps[0]), mbps]))
    series = [log_mbps]
    series += [_robust_column(log_mbps, name) for name in config.robust_inputs]
    series += [np.concatenate([np.full(pad, col[0]), col]) for col in _extra_columns(trace, config)]
    stacked = np.stack(series, axis=-1)  # (pad + n, n_inputs)
    index = origins[:, None] + np.arange(config.window)[None, :]  # padded positions of t-window+1 .. t
    x = stacked[index].astype(np.float32)
    ref = x[:, -1:, 0].copy()
    x[:, :, 0] -= ref  # log(x_i / x_t)
    for j, name in enumerate(config.robust_inputs, start=1):
        if name.startswith("median"):
            x[:, :, j] -= ref  # log(level_i / x_t)
    return x, np.exp(ref[:, 0].astype(float))


def _training_tensors(
    traces: Sequence[pd.DataFrame], config: LSTMConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every full (window, horizon) slice of every trace: inputs and log-ratio targets."""
    xs, ys = [], []
    for trace in traces:
        n = len(trace)
        origins = np.arange(config.window - 1, n - config.horizon)
        if len(origins) == 0:
            continue
        x, ref = _windows(trace, origins, config)
        mbps = np.maximum(mbps_of(trace), FLOOR_MBPS)
        future = mbps[origins[:, None] + np.arange(1, config.horizon + 1)[None, :]]
        xs.append(x)
        ys.append(np.log(future / ref[:, None]).astype(np.float32))
    if not xs:
        raise ValueError(
            f"no trace is longer than window + horizon = {config.window + config.horizon} samples"
        )
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def _loss(output: torch.Tensor, target: torch.Tensor, config: LSTMConfig) -> torch.Tensor:
    if config.loss == "ape":
        return torch.mean(torch.abs(torch.exp(output - target) - 1.0))
    if config.loss == "welsch":
        c = config.welsch_scale
        return torch.mean(c * c / 2 * (1 - torch.exp(-(((output - target) / c) ** 2))))
    if config.loss == "trimmed":
        errors = torch.abs(output - target)
        keep = max(1, math.ceil(config.trim_fraction * errors.shape[0]))
        return torch.mean(torch.topk(errors, keep, dim=0, largest=False).values)
    return torch.mean(torch.abs(output - target))


def snap(log_change: np.ndarray, tau: Sequence[float], mode: str = "hard") -> np.ndarray:
    """Shrink predicted log changes ``(n, k)`` toward 0 (the last value), column ``j`` by ``tau[j]``.

    "hard": a change smaller than tau in magnitude becomes exactly 0, larger ones are kept;
    "soft": every change moves tau toward 0 and stops there (soft thresholding).
    """
    log_change = np.asarray(log_change, dtype=float)
    k = log_change.shape[-1]
    if len(tau) < k:
        raise ValueError(f"{len(tau)} snapping thresholds for {k} steps ahead")
    t = np.asarray(tau[:k], dtype=float)
    if mode == "hard":
        return np.where(np.abs(log_change) < t, 0.0, log_change)
    if mode == "soft":
        return np.sign(log_change) * np.maximum(np.abs(log_change) - t, 0.0)
    raise ValueError(f"unknown snap mode {mode!r} (use hard or soft)")


def choose_snap_tau(
    log_change: np.ndarray, true_ratio: np.ndarray, grid: Sequence[float], mode: str = "hard"
) -> tuple[list[float], list[float]]:
    """Per step ahead, the threshold of ``grid`` with the lowest median APE, and that median APE.

    ``log_change`` are the model's raw predicted log changes ``(n, k)`` and ``true_ratio`` the true
    ``x_{t+j} / x_t``; samples with a zero truth are skipped (no percentage error). Ties go to the
    smaller threshold, so snapping is only used when it strictly helps on these samples.
    """
    taus, scores = [], []
    for j in range(log_change.shape[1]):
        ok = np.isfinite(true_ratio[:, j]) & (true_ratio[:, j] > 0)
        best = (math.inf, 0.0)
        for tau in sorted(grid):
            predicted = np.exp(snap(log_change[ok, j : j + 1], [tau], mode)[:, 0])
            score = float(np.median(np.abs(predicted / true_ratio[ok, j] - 1.0)))
            if score < best[0] - 1e-12:
                best = (score, float(tau))
        taus.append(best[1])
        scores.append(best[0])
    return taus, scores


def coarsen(trace: pd.DataFrame, scale: int) -> pd.DataFrame:
    """The trace averaged over consecutive blocks of ``scale`` samples (a partial last block is dropped)."""
    if scale == 1:
        return trace
    n = len(trace) // scale * scale
    blocks = trace.iloc[:n].to_numpy(dtype=float).reshape(-1, scale, trace.shape[1]).mean(axis=1)
    index = pd.Index(trace.index[:n:scale], name=trace.index.name)
    frame = pd.DataFrame(blocks, columns=trace.columns, index=index)
    frame.attrs.update(trace.attrs, name=f"{trace.attrs.get('name', '?')}@x{scale}")
    return frame


@dataclass
class TrainingReport:
    """How training went: per-epoch losses, the epoch kept, and whether early stopping fired."""

    train_loss: list[float]
    val_loss: list[float]
    best_epoch: int
    stopped_early: bool
    train_files: list[str]
    val_files: list[str]
    #: with ``calibrate_snap``: per step ahead, the validation median APE at the chosen threshold
    snap_val_median_ape: list[float] = field(default_factory=list)


class LSTMPredictor(Predictor):
    """The LSTM behind the common :class:`Predictor` interface."""

    name = "lstm"

    def __init__(self, config: LSTMConfig | None = None) -> None:
        self.config = copy.deepcopy(config) if config is not None else LSTMConfig()
        self.net: _Net | None = None
        self.report: TrainingReport | None = None

    # -- training ---------------------------------------------------------------------------

    def fit(self, traces: Sequence[pd.DataFrame], progress: bool | None = None) -> LSTMPredictor:
        """Train on whole traces: hold out ``val_fraction`` of the *files* for early stopping.

        ``progress``: a tqdm bar over epochs (None = only when stderr is a terminal).
        """
        with _threads(TORCH_THREADS):
            return self._fit(traces, progress)

    def _fit(self, traces: Sequence[pd.DataFrame], progress: bool | None) -> LSTMPredictor:
        from tqdm.auto import tqdm

        config = self.config
        train, val = split_by_file(traces, config.val_fraction, np.random.default_rng(config.seed))
        self._choose_extras(train)
        augmented = [coarsen(trace, s) for trace in train for s in config.augment_scales]
        x_train, y_train = _training_tensors(augmented, config)
        x_val, y_val = _training_tensors(val, config)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = _Net(config)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        shuffler = torch.Generator().manual_seed(config.seed)

        best_val, best_state, best_epoch, stale = math.inf, copy.deepcopy(net.state_dict()), 0, 0
        train_curve: list[float] = []
        val_curve: list[float] = []
        bar = tqdm(
            range(config.max_epochs),
            desc="lstm",
            unit="epoch",
            disable=None if progress is None else not progress,
            file=sys.stderr,
        )
        for epoch in bar:
            net.train()
            order = torch.randperm(len(x_train), generator=shuffler)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimiser.zero_grad()
                loss = _loss(net(x_train[batch]), y_train[batch], config)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            net.eval()
            with torch.no_grad():
                val_loss = float(_loss(net(x_val), y_val, config))
            train_curve.append(total / len(x_train))
            val_curve.append(val_loss)
            bar.set_postfix(train=f"{train_curve[-1]:.4f}", val=f"{val_loss:.4f}")
            if val_loss < best_val - 1e-6:
                best_val, best_state, best_epoch, stale = val_loss, copy.deepcopy(net.state_dict()), epoch, 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        bar.close()
        net.load_state_dict(best_state)
        net.eval()
        self.net = net
        self.report = TrainingReport(
            train_loss=train_curve,
            val_loss=val_curve,
            best_epoch=best_epoch,
            stopped_early=len(train_curve) < config.max_epochs,
            train_files=[t.attrs.get("name", "?") for t in train],
            val_files=[t.attrs.get("name", "?") for t in val],
        )
        if config.calibrate_snap:
            self.report.snap_val_median_ape = self.calibrate_snap(val)
        return self

    def calibrate_snap(self, traces: Sequence[pd.DataFrame]) -> list[float]:
        """Set ``config.snap_tau`` per step ahead to minimise median APE on ``traces``.

        Call it with held-out files of the *training* network only (``fit`` passes its validation
        files). The origins are those of :func:`novacron.prediction.evaluate.origins_of` with
        ``window`` samples of history. Returns the median APE per step at the chosen thresholds.
        """
        config = self.config
        raw, ratios = [], []
        for trace in traces:
            mbps = mbps_of(trace)
            origins = np.arange(config.window - 1, len(mbps) - config.horizon)
            if len(origins) == 0:
                continue
            raw.append(self._log_change(trace, origins))
            future = mbps[origins[:, None] + np.arange(1, config.horizon + 1)[None, :]]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratios.append(future / np.maximum(mbps[origins], FLOOR_MBPS)[:, None])
        if not raw:
            raise ValueError("no calibration trace is longer than window + horizon samples")
        taus, scores = choose_snap_tau(
            np.concatenate(raw), np.concatenate(ratios), config.snap_grid, config.snap_mode
        )
        config.snap_tau = taus
        return scores

    def _choose_extras(self, traces: Sequence[pd.DataFrame]) -> None:
        config = self.config
        if config.extra_features is None:
            config.extra_features = [c for c in KNOWN_EXTRAS if all(c in t.columns for t in traces)]
        for name in config.extra_features:
            if name == "time_of_day":
                continue
            missing = [t.attrs.get("name", "?") for t in traces if name not in t.columns]
            if missing:
                raise ValueError(f"extra feature {name!r} missing from training traces {missing[:3]}")
            values = np.concatenate([t[name].to_numpy(dtype=float) for t in traces])
            config.extra_stats[name] = [float(values.mean()), float(values.std()) or 1.0]

    # -- prediction -------------------------------------------------------------------------

    def _require_net(self) -> _Net:
        if self.net is None:
            raise RuntimeError("the LSTM is not trained: call fit() or LSTMPredictor.load()")
        return self.net

    def forecast(self, trace: pd.DataFrame, origins: np.ndarray, k: int) -> np.ndarray:
        if k > self.config.horizon:
            raise ValueError(f"the model forecasts {self.config.horizon} steps; asked for {k}")
        self._require_net()
        origins = np.asarray(origins, dtype=int)
        if len(origins) == 0:
            return np.empty((0, k))
        out = self._log_change(trace, origins)[:, :k]
        if self.config.snap_tau:
            out = snap(out, self.config.snap_tau, self.config.snap_mode)
        ref = np.maximum(mbps_of(trace), FLOOR_MBPS)[origins]
        return ref[:, None] * np.exp(out)

    def _log_change(self, trace: pd.DataFrame, origins: np.ndarray) -> np.ndarray:
        """The network's raw predicted ``log(x_{t+j} / x_t)``, shape ``(len(origins), horizon)``."""
        net = self._require_net()
        x, _ = _windows(trace, origins, self.config)
        with torch.no_grad(), _threads(TORCH_THREADS):
            return net(torch.from_numpy(x)).numpy().astype(float)

    def predict(self, history: pd.DataFrame | pd.Series | np.ndarray | Sequence[float], k: int) -> np.ndarray:
        if not isinstance(history, pd.DataFrame):
            history = pd.DataFrame({MBPS: mbps_of(history)})
        return self.forecast(history, np.array([len(history) - 1]), k)[0]

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """One file: the state dict plus the config as a JSON string (loadable with weights_only)."""
        net = self._require_net()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"format": _FILE_FORMAT, "config": self.config.to_json(), "state_dict": net.state_dict()}, path
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> LSTMPredictor:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != _FILE_FORMAT:
            raise ValueError(f"{path} is not a NovaCron PBA LSTM model file")
        predictor = cls(LSTMConfig.from_json(blob["config"]))
        net = _Net(predictor.config)
        net.load_state_dict(blob["state_dict"])
        net.eval()
        predictor.net = net
        return predictor
