"""A small learned codec selector (``enable_ml_model=True``), trained on measured outcomes.

Why learn at all: the rule-based selector (:mod:`.selector`) predicts ratios from three coarse
content classes, so it cannot tell highly compressible text from barely compressible text. The
learned selector also sees the sampled lz4 ratio and entropy, and it is trained on what each
candidate actually achieved on each buffer.

Training data (:func:`measure_samples`): seeded VM-memory-like buffers with random class mixes
(:mod:`.testdata`), each encoded with every candidate to *measure* its frame size, paired with
link rates drawn log-uniformly from 1 Mbit/s to 100 Gbit/s. Each candidate's transfer time is then
modelled with the calibrated throughputs (:mod:`.costmodel`) and the measured size, pipelined as in
the rule-based selector. Times are modelled rather than timed so training is deterministic.

Model: an MLP (6 features -> 32 -> 32 -> one score per candidate) trained with torch on CPU,
cross-entropy against the fastest candidate of each sample. (Minimising the expected normalised
time under the softmax directly was tried and stalls: regrets span four orders of magnitude, and
the softmax saturates on one candidate early.) Weights are saved as JSON and inference runs in
numpy, so only training needs torch (the ``ml`` extra). It is judged by the mean ratio of the
chosen candidate's time to the best candidate's time on held-out samples
(:meth:`Samples.mean_normalised_time`), against "always zstd-3" and the rule-based selector.
The shipped model (``selector_model.json``) is retrained by ``benchmarks/calibrate_encoding.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

from .costmodel import CostModel
from .features import DataFeatures, estimate
from .frame import encode
from .selector import DEFAULT_CANDIDATES, Choice, blend, stage_seconds, transfer_seconds, zero_choice
from .testdata import PAGE_CLASSES, MemoryGenerator

MODEL_FILE = "selector_model.json"
FEATURE_NAMES = ("zero_share", "text_share", "random_share", "entropy/8", "lz4_sample_ratio", "log10_link")
MIN_LINK_BPS, MAX_LINK_BPS = 1e6, 1e11


def feature_vector(features: DataFeatures, link_bps: float) -> np.ndarray:
    """The model's input: data features and the link rate, each scaled to about [0, 1]."""
    link = (math.log10(link_bps) - math.log10(MIN_LINK_BPS)) / math.log10(MAX_LINK_BPS / MIN_LINK_BPS)
    return np.array(
        [
            features.zero_share,
            features.text_share,
            features.random_share,
            features.entropy_bits / 8,
            features.sample_ratio,
            link,
        ]
    )


@dataclass
class Samples:
    """Training or evaluation data: one row per (buffer, link rate)."""

    features: list[DataFeatures]
    links: np.ndarray  # bits per second
    x: np.ndarray  # feature vectors, shape (n, len(FEATURE_NAMES))
    seconds: np.ndarray  # modelled transfer time of each candidate, shape (n, len(candidates))
    candidates: tuple[tuple[str, int], ...] = DEFAULT_CANDIDATES

    def mean_normalised_time(self, picks: Sequence[int]) -> float:
        """Mean of (time of the picked candidate / best candidate's time): 1.0 is an oracle."""
        rows = np.arange(len(picks))
        return float(np.mean(self.seconds[rows, np.asarray(picks)] / self.seconds.min(axis=1)))

    def index(self, codec: str, level: int) -> int:
        return self.candidates.index((codec, level))

    def picks(self, selector) -> list[int]:
        """The candidate index ``selector.choose`` picks for each row."""
        choices = (selector.choose(f, link) for f, link in zip(self.features, self.links, strict=True))
        return [self.index(c.codec, c.level) for c in choices]


def measure_samples(
    cost_model: CostModel,
    *,
    seed: int,
    buffers: int = 160,
    pages_per_buffer: int = 8,
    links_per_buffer: int = 8,
    candidates: Sequence[tuple[str, int]] = DEFAULT_CANDIDATES,
    pipelined: bool = True,
) -> Samples:
    """Measured samples (see the module docstring); the same seed gives the same samples."""
    rng = np.random.default_rng(seed)
    generator = MemoryGenerator(rng)
    features, links, xs, seconds = [], [], [], []
    for _ in range(buffers):
        shares = rng.dirichlet([0.5, 0.5, 0.5])
        classes = [PAGE_CLASSES[i] for i in rng.choice(3, size=pages_per_buffer, p=shares)]
        if all(c == "zero" for c in classes):
            classes[0] = "text"  # all-zero buffers never reach a selector (zero-page marker)
        data = b"".join(generator.page(c) for c in classes)
        true_shares = {c: classes.count(c) / len(classes) for c in PAGE_CLASSES}
        sizes = [len(encode(data, codec, level)) for codec, level in candidates]
        feats = estimate(data)
        for link in np.exp(
            rng.uniform(math.log(MIN_LINK_BPS), math.log(MAX_LINK_BPS), size=links_per_buffer)
        ):
            row = []
            for (codec, level), size in zip(candidates, sizes, strict=True):
                cost = replace(blend(cost_model, codec, level, true_shares), ratio=size / len(data))
                row.append(transfer_seconds(stage_seconds(cost, len(data), link), pipelined))
            features.append(feats)
            links.append(link)
            xs.append(feature_vector(feats, link))
            seconds.append(row)
    return Samples(features, np.array(links), np.array(xs), np.array(seconds), tuple(candidates))


def train(
    samples: Samples, *, seed: int = 0, hidden: int = 32, epochs: int = 1000, lr: float = 0.01
) -> list[np.ndarray]:
    """Train the MLP on ``samples``; returns its layers as numpy arrays ``[W1, b1, W2, b2, W3, b3]``.

    Deterministic for a given seed and samples: full-batch Adam, a forked torch RNG and a single
    thread (so reductions run in a fixed order), with the caller's torch state restored after.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            n_in, n_out = samples.x.shape[1], samples.seconds.shape[1]
            net = torch.nn.Sequential(
                torch.nn.Linear(n_in, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, n_out),
            ).double()
            x = torch.from_numpy(samples.x).double()
            fastest = torch.from_numpy(samples.seconds.argmin(axis=1))
            optimiser = torch.optim.Adam(net.parameters(), lr=lr)
            for _ in range(epochs):
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(x), fastest)
                loss.backward()
                optimiser.step()
            return [p.detach().numpy().copy() for p in net.parameters()]
    finally:
        torch.set_num_threads(threads)


def scores(layers: Sequence[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The MLP's forward pass in numpy: one score per candidate (highest wins)."""
    h = np.asarray(x, dtype=float)
    for i in range(0, len(layers), 2):
        h = h @ layers[i].T + layers[i + 1]
        if i + 2 < len(layers):
            h = np.maximum(h, 0.0)
    return h


@dataclass
class LearnedSelector:
    """Chooses with the trained MLP; same interface as :class:`.selector.RuleSelector`."""

    layers: list[np.ndarray]
    candidates: tuple[tuple[str, int], ...] = DEFAULT_CANDIDATES
    cost_model: CostModel = field(default_factory=CostModel.load)
    pipelined: bool = True
    meta: dict[str, object] = field(default_factory=dict)

    @classmethod
    def fit(cls, samples: Samples, cost_model: CostModel, *, seed: int = 0, **kwargs) -> LearnedSelector:
        """Train on ``samples`` (see :func:`train`) and wrap the result."""
        return cls(train(samples, seed=seed, **kwargs), samples.candidates, cost_model, meta={"seed": seed})

    def pick(self, x: np.ndarray) -> np.ndarray:
        """Candidate index for each row of feature vectors ``x``."""
        return np.argmax(scores(self.layers, np.atleast_2d(x)), axis=1)

    def choose(self, data: bytes | memoryview | DataFeatures, link_bps: float) -> Choice:
        """Codec and level for ``data`` (or its features) over a ``link_bps`` link."""
        features = data if isinstance(data, DataFeatures) else estimate(data)
        if features.all_zero:
            return zero_choice(features, link_bps)
        codec, level = self.candidates[int(self.pick(feature_vector(features, link_bps))[0])]

        def modelled(codec: str, level: int) -> tuple[float, float]:
            cost = blend(self.cost_model, codec, level, features.shares())
            return transfer_seconds(stage_seconds(cost, features.size, link_bps), self.pipelined), cost.ratio

        seconds, ratio = modelled(codec, level)
        return Choice(codec, level, seconds, modelled("none", 0)[0], ratio)

    # -- persistence --------------------------------------------------------------------------
    def to_json(self) -> str:
        body = {
            "features": list(FEATURE_NAMES),
            "candidates": [list(c) for c in self.candidates],
            "layers": [layer.tolist() for layer in self.layers],
            "meta": self.meta,
        }
        return json.dumps(body) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path | None = None, cost_model: CostModel | None = None) -> LearnedSelector:
        """The model in ``path``, or the one shipped in the package."""
        if path is None:
            text = resources.files(__package__).joinpath(MODEL_FILE).read_text()
        else:
            text = Path(path).read_text()
        raw = json.loads(text)
        if tuple(raw["features"]) != FEATURE_NAMES:
            raise ValueError(f"model expects features {raw['features']}, this code computes {FEATURE_NAMES}")
        return cls(
            [np.array(layer, dtype=float) for layer in raw["layers"]],
            tuple((c, int(lv)) for c, lv in raw["candidates"]),
            cost_model or CostModel.load(),
            meta=raw.get("meta", {}),
        )
