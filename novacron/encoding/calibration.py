"""Measuring the cost model on this machine (the protocol-side half of the calibration).

The clock is a parameter, like every source of time in protocol code: the calibration *script*
(``benchmarks/calibrate_encoding.py``) passes ``time.perf_counter``; tests can pass a fake clock.
Each figure is the best of a few runs (the least disturbed by other load), with a time budget so
the slow levels (zstd 19-22) run once or twice rather than holding up the whole calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from .costmodel import CONTENT_CLASSES, CodecCost, CostModel, DeltaCost
from .delta import encode_delta
from .frame import VERSION, decode, encode, is_zero
from .testdata import DEFAULT_MIX, PAGE_SIZE, MemoryGenerator

Clock = Callable[[], float]

DEFAULT_LEVELS: Mapping[str, Sequence[int]] = {
    "none": [0],
    "lz4": [0, 3, 6, 9, 12, 16],
    "zstd": [-100, -20, -5, -1, 1, 2, 3, 5, 7, 9, 12, 15, 19, 22],
}
CLASS_MIXES = {"zero": {"zero": 1.0}, "text": {"text": 1.0}, "random": {"random": 1.0}, "mixed": DEFAULT_MIX}
DELTA_CHANGED = (0.01, 0.05, 0.10)
#: Re-sent pages for the delta figures: the non-zero classes of the default mix.
DELTA_MIX = {"text": 0.75, "random": 0.25}


def best_seconds(fn: Callable[[], object], clock: Clock, repeats: int, budget: float) -> float:
    """The shortest of up to ``repeats`` timed calls of ``fn``, stopping once ``budget`` s are spent."""
    best = float("inf")
    spent = 0.0
    for _ in range(max(1, repeats)):
        start = clock()
        fn()
        elapsed = clock() - start
        best = min(best, elapsed)
        spent += elapsed
        if spent >= budget:
            break
    return max(best, 1e-9)


def calibrate(
    clock: Clock,
    *,
    seed: int = 0,
    nbytes: int = 1 << 20,
    repeats: int = 3,
    budget: float = 1.0,
    levels: Mapping[str, Sequence[int]] = DEFAULT_LEVELS,
    delta_pages: int = 256,
    delta_codec: tuple[str, int] = ("zstd", 3),
    machine: str = "",
    progress: Callable[[str], None] | None = None,
) -> CostModel:
    """Measure every codec and level on ``nbytes`` of each content class, and the delta methods."""
    generator = MemoryGenerator(seed)
    n_pages = max(1, nbytes // PAGE_SIZE)
    buffers = {content: generator.memory(n_pages, CLASS_MIXES[content]) for content in CONTENT_CLASSES}
    codecs: dict[tuple[str, int, str], CodecCost] = {}
    for codec, codec_levels in levels.items():
        for level in codec_levels:
            for content, data in buffers.items():
                frame = encode(data, codec, level, eliminate_zero=False)
                encoding = partial(encode, data, codec, level, eliminate_zero=False)
                enc = best_seconds(encoding, clock, repeats, budget)
                dec = best_seconds(partial(decode, frame), clock, repeats, budget)
                codecs[(codec, level, content)] = CodecCost(
                    len(data) / enc, len(data) / dec, len(frame) / len(data)
                )
            if progress:
                progress(f"{codec} {level}")
    zero = buffers["zero"]
    zero_scan = len(zero) / best_seconds(lambda: is_zero(zero), clock, repeats, budget)
    deltas = tuple(
        _measure_delta(generator, method, changed, delta_pages, delta_codec, clock, repeats, budget)
        for method in ("xbzrle", "rsync")
        for changed in DELTA_CHANGED
    )
    meta = {
        "bytes_per_class": n_pages * PAGE_SIZE,
        "repeats": repeats,
        "seed": seed,
        "delta_pages": delta_pages,
        "delta_codec": list(delta_codec),
        "how": f"best-of-N wall-clock rates of novacron.encoding encode()/decode() (framing and checksums of "
        f"HDE frame version {VERSION} included) on novacron.encoding.testdata buffers; "
        "redo with benchmarks/calibrate_encoding.py",
    }
    return CostModel(codecs, deltas, zero_scan, machine, meta)


def _measure_delta(
    generator: MemoryGenerator,
    method: str,
    changed: float,
    n_pages: int,
    codec: tuple[str, int],
    clock: Clock,
    repeats: int,
    budget: float,
) -> DeltaCost:
    pages = generator.pages(n_pages, DELTA_MIX)
    pairs = [(page, generator.resend(page, changed, kind)) for kind, page in pages]
    codec_name, level = codec

    def encode_all() -> list[bytes]:
        return [encode_delta(old, new, method, codec_name, level) for old, new in pairs]  # type: ignore[arg-type]

    frames = encode_all()

    def decode_all() -> list[bytes]:
        return [decode(frame, old) for frame, (old, _) in zip(frames, pairs, strict=True)]

    total = sum(len(new) for _, new in pairs)
    enc = best_seconds(encode_all, clock, repeats, budget)
    dec = best_seconds(decode_all, clock, repeats, budget)
    return DeltaCost(method, changed, total / enc, total / dec, sum(map(len, frames)) / total)
