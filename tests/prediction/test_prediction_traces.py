"""Trace loading: both file formats, mahimahi binning arithmetic, errors, the split by file."""

import numpy as np
import pytest

from novacron.prediction.traces import (
    TraceFormatError,
    bin_mahimahi,
    data_dir,
    load_trace,
    load_traces,
    split_by_file,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_error_names_file_and_line(path, fmt, line, fragment):
    """Loading ``path`` as ``fmt`` fails with ``fragment``, and the message starts ``path:line:``."""
    with pytest.raises(TraceFormatError, match=fragment) as info:
        load_trace(path, fmt)
    assert str(info.value).startswith(f"{path}:{line}:")


def test_time_mbps_lines_with_tabs_or_spaces(tmp_path):
    trace = load_trace(write(tmp_path, "a.log", "0.0\t4.5\n1.0  3.25\n\n2.5 0\n"))
    assert list(trace.index) == [0.0, 1.0, 2.5]
    assert list(trace["mbps"]) == [4.5, 3.25, 0.0]
    assert trace.attrs["name"] == "a.log" and trace.attrs["format"] == "time_mbps"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("0 1\n1 2 3\n", 2, "expected 2 fields"),
        ("0 1\n1 fast\n", 2, "not a number"),
        ("0 1\n1 -2\n", 2, "negative throughput"),
        ("0 1\n1 2\n1 3\n", 3, "does not increase"),
        ("0 1\n1 nan\n", 2, "finite"),
    ],
)
def test_malformed_time_mbps_names_file_and_line(tmp_path, text, line, fragment):
    assert_error_names_file_and_line(write(tmp_path, "bad.log", text), "time_mbps", line, fragment)


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(TraceFormatError, match="empty"):
        load_trace(write(tmp_path, "empty.log", "\n# nothing\n"))


def test_mahimahi_binning_arithmetic():
    # bins of 1 s: [0,1000) has 3 packets, [1000,2000) 1, [2000,3000) 1; 3000 starts a partial bin (dropped)
    series = bin_mahimahi([0, 500, 999, 1000, 2500, 3000], bin_seconds=1.0)
    per_packet = 1500 * 8 / 1e6  # Mbps for one packet per second
    np.testing.assert_allclose(series.to_numpy(), [3 * per_packet, per_packet, per_packet])
    assert list(series.index) == [0.0, 1.0, 2.0]
    half = bin_mahimahi([0, 100, 600, 1000], bin_seconds=0.5)  # 2 packets / 0.5 s, then 1 / 0.5 s
    np.testing.assert_allclose(half.to_numpy(), [2 * per_packet / 0.5, per_packet / 0.5])


def test_mahimahi_empty_bins_are_zero_and_file_is_sniffed(tmp_path):
    trace = load_trace(write(tmp_path, "trace.up", "0\n0\n2000\n3000\n"))
    assert trace.attrs["format"] == "mahimahi"
    np.testing.assert_allclose(trace["mbps"].to_numpy(), [0.024, 0.0, 0.012])


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("0\n5\n3\n2000\n", 3, "goes backwards"),
        ("0\n1.5\n", 2, "not an integer"),
        ("0\n7 8\n", 2, "one millisecond"),
    ],
)
def test_malformed_mahimahi_names_file_and_line(tmp_path, text, line, fragment):
    assert_error_names_file_and_line(write(tmp_path, "bad.up", text), "mahimahi", line, fragment)


def test_mahimahi_shorter_than_one_bin(tmp_path):
    with pytest.raises(TraceFormatError, match="at least one"):
        load_trace(write(tmp_path, "short.up", "0\n10\n900\n"))


def test_shipped_datasets_load():
    hsdpa = load_traces([data_dir("norway_hsdpa")])
    fcc = load_traces([data_dir("fcc")])
    assert len(hsdpa) == 80 and len(fcc) == 88
    assert all(len(t) >= 30 and (t["mbps"] >= 0).all() for t in hsdpa + fcc)


def test_missing_paths_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_traces([tmp_path / "nope"])


def test_split_by_file_never_puts_a_file_on_both_sides():
    traces = load_traces([data_dir("fcc")])
    for seed in range(5):
        first, second = split_by_file(traces, 0.25, np.random.default_rng(seed))
        names_first = {t.attrs["path"] for t in first}
        names_second = {t.attrs["path"] for t in second}
        assert not names_first & names_second
        assert len(names_first) + len(names_second) == len(traces) and len(second) == 22
    again = split_by_file(traces, 0.25, np.random.default_rng(3))[1]
    assert [t.attrs["path"] for t in again] == [
        t.attrs["path"] for t in split_by_file(traces, 0.25, np.random.default_rng(3))[1]
    ]
