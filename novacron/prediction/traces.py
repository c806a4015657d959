"""Loading bandwidth traces into pandas, with errors that name the file and the line.

Two on-disk formats are understood:

* ``time_mbps``: one sample per line, ``time_seconds<TAB or spaces>throughput_Mbps`` (the files under
  ``novacron/data/bandwidth/``: Norway HSDPA and FCC). Extra numeric columns are not allowed here,
  so a silently shifted column cannot be mistaken for throughput.
* ``mahimahi``: a mahimahi delivery-opportunity file, one integer millisecond timestamp per line,
  each line being one chance to deliver a 1500-byte packet. We bin it into fixed-width bins
  (1 s by default) and convert the packet count to Mbps: ``count * 1500 * 8 / bin_seconds / 1e6``.

A loaded trace is a :class:`pandas.DataFrame` indexed by ``time_s`` (float seconds from the start of
the file) with a ``mbps`` column. Optional extra columns (``latency_ms``, ``loss``, ``time_of_day``)
may be added by callers; the LSTM uses them when present (see :mod:`novacron.prediction.lstm`).
``df.attrs["name"]`` is the file name, used to split train/test *by file*.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: bytes per mahimahi delivery opportunity (one MTU-sized packet)
MAHIMAHI_PACKET_BYTES = 1500
#: the throughput column every trace has
MBPS = "mbps"


class TraceFormatError(ValueError):
    """A trace file that cannot be parsed; the message starts with ``path:line:``."""


def data_dir(network: str) -> Path:
    """The folder of a shipped bandwidth dataset, e.g. ``data_dir("fcc")``."""
    import novacron.data

    path = Path(novacron.data.__file__).parent / "bandwidth" / network
    if not path.is_dir():
        raise FileNotFoundError(f"no shipped bandwidth dataset {network!r} (looked in {path})")
    return path


def _error(path: Path, lineno: int, message: str) -> TraceFormatError:
    return TraceFormatError(f"{path}:{lineno}: {message}")


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-blank, non-comment lines as (1-based line number, whitespace-split fields)."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"{path}: not a text file ({exc.reason})") from None
    lines = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((lineno, stripped.split()))
    if not lines:
        raise TraceFormatError(f"{path}: empty trace (no samples)")
    return lines


def _frame(times: np.ndarray, mbps: np.ndarray, path: Path, fmt: str) -> pd.DataFrame:
    frame = pd.DataFrame({MBPS: mbps}, index=pd.Index(times, name="time_s"))
    frame.attrs.update({"name": path.name, "path": str(path), "format": fmt})
    return frame


def parse_time_mbps(path: Path) -> pd.DataFrame:
    """Parse a ``time_seconds throughput_Mbps`` file; times must strictly increase."""
    times: list[float] = []
    values: list[float] = []
    for lineno, fields in _data_lines(path):
        if len(fields) != 2:
            raise _error(path, lineno, f"expected 2 fields 'time_seconds Mbps', got {len(fields)}")
        try:
            t, v = float(fields[0]), float(fields[1])
        except ValueError:
            raise _error(path, lineno, f"not a number in {' '.join(fields)!r}") from None
        if not (math.isfinite(t) and math.isfinite(v)):
            raise _error(path, lineno, "time and throughput must be finite")
        if v < 0:
            raise _error(path, lineno, f"negative throughput {v}")
        if times and t <= times[-1]:
            raise _error(path, lineno, f"time {t} does not increase (previous {times[-1]})")
        times.append(t)
        values.append(v)
    return _frame(np.asarray(times), np.asarray(values), path, "time_mbps")


def bin_mahimahi(timestamps_ms: Sequence[int], bin_seconds: float = 1.0) -> pd.Series:
    """Packet timestamps (ms) -> Mbps per bin.

    Bin ``i`` covers ``[i*bin, (i+1)*bin)`` ms; empty bins are 0 Mbps. The trailing bin is dropped
    unless it is complete (its end is at or before the last timestamp), because a partial bin
    would look like a throughput drop. Raises ``ValueError`` if not even one bin is complete.
    """
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be positive, got {bin_seconds}")
    stamps = np.asarray(timestamps_ms, dtype=float)
    bin_ms = bin_seconds * 1000.0
    n_bins = int(stamps.max() // bin_ms) if len(stamps) else 0
    if n_bins < 1:
        raise ValueError(f"a mahimahi trace must span at least one {bin_ms:g} ms bin")
    counts = np.bincount((stamps // bin_ms).astype(int), minlength=n_bins + 1)[:n_bins]
    mbps = counts * MAHIMAHI_PACKET_BYTES * 8 / bin_seconds / 1e6
    return pd.Series(mbps, index=pd.Index(np.arange(n_bins) * bin_seconds, name="time_s"), name=MBPS)


def parse_mahimahi(path: Path, bin_seconds: float = 1.0) -> pd.DataFrame:
    """Parse a mahimahi file (non-decreasing integer ms timestamps) and bin it to Mbps."""
    stamps: list[int] = []
    for lineno, fields in _data_lines(path):
        if len(fields) != 1:
            raise _error(path, lineno, f"expected one millisecond timestamp, got {len(fields)} fields")
        try:
            stamp = int(fields[0])
        except ValueError:
            raise _error(path, lineno, f"not an integer millisecond timestamp: {fields[0]!r}") from None
        if stamp < 0:
            raise _error(path, lineno, f"negative timestamp {stamp}")
        if stamps and stamp < stamps[-1]:
            raise _error(path, lineno, f"timestamp {stamp} goes backwards (previous {stamps[-1]})")
        stamps.append(stamp)
    try:
        series = bin_mahimahi(stamps, bin_seconds)
    except ValueError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None
    return _frame(series.index.to_numpy(), series.to_numpy(), path, "mahimahi")


def sniff_format(path: Path) -> str:
    """``"mahimahi"`` if the first data line is one integer, else ``"time_mbps"``."""
    _, fields = _data_lines(path)[0]
    return "mahimahi" if len(fields) == 1 and fields[0].lstrip("-").isdigit() else "time_mbps"


def load_trace(path: str | Path, fmt: str = "auto", bin_seconds: float = 1.0) -> pd.DataFrame:
    """Load one trace file; ``fmt`` is ``"auto"``, ``"time_mbps"`` or ``"mahimahi"``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no trace file {path}")
    fmt = sniff_format(path) if fmt == "auto" else fmt
    if fmt == "time_mbps":
        return parse_time_mbps(path)
    if fmt == "mahimahi":
        return parse_mahimahi(path, bin_seconds)
    raise ValueError(f"unknown trace format {fmt!r} (use auto, time_mbps or mahimahi)")


def trace_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (every regular, non-hidden file inside, sorted) into files."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files.extend(sorted(p for p in entry.iterdir() if p.is_file() and not p.name.startswith(".")))
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"no trace file or directory {entry}")
    if not files:
        raise FileNotFoundError(f"no trace files in {[str(p) for p in paths]}")
    return files


def load_traces(
    paths: Iterable[str | Path], fmt: str = "auto", bin_seconds: float = 1.0
) -> list[pd.DataFrame]:
    """Load every trace file given directly or inside the given directories."""
    return [load_trace(path, fmt, bin_seconds) for path in trace_files(paths)]


def split_by_file(
    traces: Sequence[pd.DataFrame], fraction: float, rng: np.random.Generator
) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Shuffle whole traces and split them into (first, second) with ``fraction`` in the second.

    Splitting by file, never by time inside a file, keeps the second set honest: consecutive samples
    of one trace are strongly correlated, so a time split would leak the future of a file into
    training. At least one trace lands on each side when there are two or more.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(traces) < 2:
        raise ValueError("need at least two trace files to split by file")
    order = rng.permutation(len(traces))
    n_second = min(max(1, round(len(traces) * fraction)), len(traces) - 1)
    second = sorted(order[:n_second])
    first = sorted(order[n_second:])
    return [traces[i] for i in first], [traces[i] for i in second]
