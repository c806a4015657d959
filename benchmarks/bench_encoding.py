"""HDE (novacron.encoding) against the raw compression libraries, on VM-memory-like data.

(a) Throughput: HDE ``encode``/``decode`` (frame version 2: XXH3 of the stored payload, bounded
    decompression) against raw ``zstandard`` / ``lz4.frame`` on the same buffers and levels
    (zstd 1, 3, 9; lz4 0, 9), both with a reused compressor. Target: >= 0.9x the raw library. A
    second decode baseline, "raw+check", does the same integrity check by hand, to separate the
    cost of verifying the bytes from the cost of the framing. "v1 dec" decodes the same data
    framed as version 1 (CRC-32 of the decoded result; ISA-L's when the ``isal`` package is
    installed, zlib's otherwise, the line under the table says which), for comparison.
(b) Compression ratio per codec and content class (frame bytes / original bytes), whole 1 MiB
    buffers and 4 KiB pages one at a time (as migration sends them); "none" is the baseline.
(c) Delta reduction on re-sent 4 KiB pages with 1 %, 5 %, 10 % of their bytes changed (clustered
    writes): bytes of plain zstd-3 of the new page (raw library, no frame: the baseline) divided
    by bytes of the HDE delta frame. Target: >= 3x at up to 10 % changed. Plus one shifted-content
    case (bytes inserted), which only the rsync-style method handles.
(d) Codec selection on held-out samples: mean modelled transfer time / best candidate's time,
    learned and rule-based selectors against "always zstd-3" and "always none".

Run: .venv/bin/python benchmarks/bench_encoding.py
"""

from __future__ import annotations

import time
from functools import partial

import lz4.frame
import zstandard
from common import report

from novacron.encoding import CostModel, MemoryGenerator, RuleSelector, decode, encode, encode_delta
from novacron.encoding.frame import CRC32_IMPLEMENTATION, checksum
from novacron.encoding.learned import LearnedSelector, measure_samples

REPEATS = 7
BUFFER_BYTES = 4 << 20
PAGES = 400
LEVELS = [("zstd", 1), ("zstd", 3), ("zstd", 9), ("lz4", 0), ("lz4", 9)]


def rate(fn, nbytes: int) -> float:
    start = time.perf_counter()
    fn()
    return nbytes / (time.perf_counter() - start) / 1e6


def raw_pair(codec: str, level: int):
    """The raw library's compress and decompress, with a reused context like HDE's."""
    if codec == "zstd":
        compressor, decompressor = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
        return compressor.compress, decompressor.decompress
    return (lambda b: lz4.frame.compress(b, compression_level=level)), lz4.frame.decompress


def throughput(gen: MemoryGenerator) -> list[dict]:
    buffers = {
        "mixed": gen.memory(BUFFER_BYTES // 4096),
        "text": gen.memory(BUFFER_BYTES // 4096, {"text": 1.0}),
    }
    rows = []
    for content, data in buffers.items():
        n = len(data)
        for codec, level in LEVELS:
            compress, decompress = raw_pair(codec, level)
            packed, frame = compress(data), encode(data, codec, level)
            frame_v1 = encode(data, codec, level, version=1)
            assert decompress(packed) == data and decode(frame) == data == decode(frame_v1)
            timed = {
                "raw_enc": partial(compress, data),
                "hde_enc": partial(encode, data, codec, level),
                "raw_dec": partial(decompress, packed),
                "raw_check_dec": lambda decompress=decompress, packed=packed: (
                    checksum(packed),
                    decompress(packed),
                ),
                "hde_dec": partial(decode, frame),
                "hde_v1_dec": partial(decode, frame_v1),
            }
            best = dict.fromkeys(timed, 0.0)
            for _ in range(REPEATS if level < 9 else 2):  # interleaved: other load hits all alike
                for name, fn in timed.items():
                    best[name] = max(best[name], rate(fn, n))
            rows.append(
                {
                    "data": content,
                    "codec": f"{codec}-{level}",
                    "raw enc MB/s": round(best["raw_enc"]),
                    "HDE enc MB/s": round(best["hde_enc"]),
                    "enc ratio": round(best["hde_enc"] / best["raw_enc"], 3),
                    "raw dec MB/s": round(best["raw_dec"]),
                    "raw+check dec": round(best["raw_check_dec"]),
                    "HDE dec MB/s": round(best["hde_dec"]),
                    "dec ratio": round(best["hde_dec"] / best["raw_dec"], 3),
                    "vs raw+check": round(best["hde_dec"] / best["raw_check_dec"], 3),
                    "v1 dec ratio": round(best["hde_v1_dec"] / best["raw_dec"], 3),
                }
            )
    return rows


def ratios(gen: MemoryGenerator) -> list[dict]:
    n_pages = 256
    buffers = {
        "zero": gen.memory(n_pages, {"zero": 1.0}),
        **{
            style: b"".join(gen.page("text", style) for _ in range(n_pages))
            for style in ("prose", "code", "records")
        },
        "random": gen.memory(n_pages, {"random": 1.0}),
        "mixed": gen.memory(n_pages),
    }
    pages = [buffers["mixed"][i : i + 4096] for i in range(0, len(buffers["mixed"]), 4096)]
    rows = []
    for codec, level in [
        ("none", 0),
        ("lz4", 0),
        ("lz4", 9),
        ("zstd", 1),
        ("zstd", 3),
        ("zstd", 9),
        ("zstd", 19),
    ]:
        row = {"codec": f"{codec}-{level}"}
        for content, data in buffers.items():
            row[content] = round(len(encode(data, codec, level)) / len(data), 4)
        row["mixed, per page"] = round(
            sum(len(encode(p, codec, level)) for p in pages) / len(buffers["mixed"]), 4
        )
        rows.append(row)
    return rows


def deltas(gen: MemoryGenerator) -> list[dict]:
    zstd3 = zstandard.ZstdCompressor(level=3)
    rows = []
    for changed in (0.01, 0.05, 0.10):
        for content, mix in (
            ("text", {"text": 1.0}),
            ("random", {"random": 1.0}),
            ("mixed", {"text": 0.75, "random": 0.25}),
        ):
            pairs = [(old, gen.resend(old, changed, kind)) for kind, old in gen.pages(PAGES, mix)]
            baseline = sum(len(zstd3.compress(new)) for _, new in pairs)
            row = {"changed": f"{changed:.0%}", "pages": content, "zstd-3 B/page": round(baseline / PAGES)}
            for method in ("xbzrle", "rsync"):
                start = time.perf_counter()
                frames = [encode_delta(old, new, method) for old, new in pairs]
                elapsed = time.perf_counter() - start
                assert all(decode(f, old) == new for f, (old, new) in zip(frames, pairs, strict=True))
                size = sum(map(len, frames))
                row[f"{method} B/page"] = round(size / PAGES)
                row[f"{method} reduction"] = round(baseline / size, 2)
                row[f"{method} enc MB/s"] = round(PAGES * 4096 / elapsed / 1e6)
            rows.append(row)
    # Shifted content: 24 bytes inserted near the start of a 64 KiB text buffer (one "page" of 64 KiB).
    # XBZRLE compares same-sized pages only, so it has no figure here.
    old = gen.memory(16, {"text": 1.0})
    new = old[:1000] + gen.page("text")[:24] + old[1000:]
    start = time.perf_counter()
    frame = encode_delta(old, new, "rsync")
    elapsed = time.perf_counter() - start
    assert decode(frame, old) == new
    baseline = len(zstd3.compress(new))
    row = {"changed": "insert 24 B", "pages": "64 KiB text", "zstd-3 B/page": baseline}
    row |= {"xbzrle B/page": "n/a", "xbzrle reduction": "n/a", "xbzrle enc MB/s": "n/a"}
    row |= {"rsync B/page": len(frame), "rsync reduction": round(baseline / len(frame), 2)}
    row["rsync enc MB/s"] = round(len(new) / elapsed / 1e6)
    rows.append(row)
    return rows


def selection() -> list[dict]:
    model = CostModel.load()
    held_out = measure_samples(model, seed=2, buffers=80)
    picks = {
        "learned (enable_ml_model)": held_out.picks(LearnedSelector.load(cost_model=model)),
        "rule-based (default)": held_out.picks(RuleSelector(model)),
        "always zstd-3 (baseline)": [held_out.index("zstd", 3)] * len(held_out.x),
        "always none": [held_out.index("none", 0)] * len(held_out.x),
    }
    return [
        {"selector": k, "mean time / best": round(held_out.mean_normalised_time(v), 4)}
        for k, v in picks.items()
    ]


def main() -> None:
    gen = MemoryGenerator(seed=11)
    report("(a) HDE throughput vs raw library, same buffers and levels (4 MiB)", throughput(gen))
    print(
        "target: enc ratio and dec ratio >= 0.9   "
        f"(frame version 2; version 1 frames: CRC-32 by {CRC32_IMPLEMENTATION})"
    )
    report("(b) frame bytes / original bytes per content class", ratios(gen))
    report(
        f"(c) delta frames on re-sent 4 KiB pages ({PAGES} per row) vs plain zstd-3 of the new page",
        deltas(gen),
    )
    print("target: reduction >= 3 at up to 10% changed")
    report("(d) codec selection, held-out samples (80 buffers x 8 links, 1 Mbit/s-100 Gbit/s)", selection())


if __name__ == "__main__":
    main()
