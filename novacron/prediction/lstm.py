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
    #: bulk of the samples (what the *median* APE measures) rather than on unpredictable outliers
    loss: str = "l1_log"
    welsch_scale: float = 0.15
    #: time-scale augmentation: also train on each training trace averaged over blocks of s samples, for
    #: each s here (1 = as is), so the model sees coarser networks (FCC's 5 s vs HSDPA's ~1 s samples)
    augment_scales: list[int] = field(default_factory=lambda: [1])
    #: extra input columns; None = every one of KNOWN_EXTRAS present in all training traces
    extra_features: list[str] | None = None
    #: per extra column (standardised ones): training mean and std, filled in by ``fit``
    extra_stats: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window < 1 or self.horizon < 1:
            raise ValueError("window and horizon must be at least 1")
        if self.loss not in ("l1_log", "ape", "welsch"):
            raise ValueError(f"unknown loss {self.loss!r} (use l1_log, ape or welsch)")
        if not self.augment_scales or min(self.augment_scales) < 1:
            raise ValueError("augment_scales must be a non-empty list of integers >= 1")
        unknown = set(self.extra_features or ()) - set(KNOWN_EXTRAS)
        if unknown:
            raise ValueError(f"unknown extra features {sorted(unknown)}; known: {list(KNOWN_EXTRAS)}")

    @property
    def n_inputs(self) -> int:
        extras = self.extra_features or []
        return 1 + sum(2 if name == "time_of_day" else 1 for name in extras)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


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


def _windows(trace: pd.DataFrame, origins: np.ndarray, config: LSTMConfig) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(len(origins), window, n_inputs)`` and the reference level ``x_t`` of each origin.

    An origin with fewer than ``window`` samples of history is padded by repeating the first sample.
    """
    mbps = np.maximum(mbps_of(trace), FLOOR_MBPS)
    pad = config.window - 1
    series = [np.log(np.concatenate([np.full(pad, mbps[0]), mbps]))]
    series += [np.concatenate([np.full(pad, col[0]), col]) for col in _extra_columns(trace, config)]
    stacked = np.stack(series, axis=-1)  # (pad + n, n_inputs)
    index = origins[:, None] + np.arange(config.window)[None, :]  # padded positions of t-window+1 .. t
    x = stacked[index].astype(np.float32)
    ref = x[:, -1:, 0].copy()
    x[:, :, 0] -= ref  # log(x_i / x_t)
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
    return torch.mean(torch.abs(output - target))


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
        return self

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
        net = self._require_net()
        origins = np.asarray(origins, dtype=int)
        if len(origins) == 0:
            return np.empty((0, k))
        x, ref = _windows(trace, origins, self.config)
        with torch.no_grad(), _threads(TORCH_THREADS):
            out = net(torch.from_numpy(x)).numpy().astype(float)
        return ref[:, None] * np.exp(out[:, :k])

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
