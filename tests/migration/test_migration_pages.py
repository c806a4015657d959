"""Migration batches of real pages: what goes as zero, delta or full, and bad input."""

import numpy as np
import pytest

from novacron.encoding.testdata import MemoryGenerator
from novacron.migration import BatchEncoder, BatchError, MigrationSettings, RealPages, decode_real

PAGE = 4096
SLOW_LINK = 10e6  # deltas and compression pay
FAST_LINK = 100e9  # neither pays


def memory(n=64, seed=0):
    gen = MemoryGenerator(seed)
    kinds = ["zero", "text", "random", "text"]
    return np.frombuffer(b"".join(gen.page(kinds[i % 4]) for i in range(n)), np.uint8).reshape(n, PAGE).copy()


def roundtrip(encoder, dest, ids, rows, link):
    batch = encoder.encode_real(RealPages(ids, rows[ids]), link)
    if batch.run is not None:  # bare page bytes (the destination may receive them in place)
        first, count = batch.run
        dest[first : first + count] = np.frombuffer(batch.payload, np.uint8).reshape(count, PAGE)
        return batch.stats
    for pages in decode_real(batch.payload, len(dest), PAGE, lambda i: dest[i]):
        dest[pages.ids] = pages.data
    return batch.stats


def test_a_batch_round_trips_and_zero_pages_travel_as_ids():
    rows, dest = memory(), np.zeros((64, PAGE), np.uint8)
    stats = roundtrip(BatchEncoder(MigrationSettings.dwcp(), 64, PAGE), dest, np.arange(64), rows, SLOW_LINK)
    assert np.array_equal(dest, rows)
    assert stats.zero == 16 and stats.full == 48 and stats.delta == 0
    assert stats.bytes_out < 0.6 * stats.bytes_in  # zero pages free, text compressed


def test_re_sent_pages_go_as_deltas_against_the_destinations_copy():
    rows, dest = memory(), np.zeros((64, PAGE), np.uint8)
    encoder = BatchEncoder(MigrationSettings.dwcp(), 64, PAGE)
    roundtrip(encoder, dest, np.arange(64), rows, SLOW_LINK)
    dirty = np.array([1, 2, 5, 6])
    rows[dirty, 100:140] = 7  # small in-place writes
    stats = roundtrip(encoder, dest, dirty, rows, SLOW_LINK)
    assert np.array_equal(dest, rows)
    assert stats.delta == 4 and stats.bytes_out < 0.1 * stats.bytes_in


def test_on_a_fast_link_nothing_is_compressed_or_delta_encoded():
    rows, dest = memory(), np.zeros((64, PAGE), np.uint8)
    encoder = BatchEncoder(MigrationSettings.dwcp(), 64, PAGE)
    roundtrip(encoder, dest, np.arange(64), rows, FAST_LINK)
    rows[3, :10] = 1
    stats = roundtrip(encoder, dest, np.array([3]), rows, FAST_LINK)
    assert stats.codec == "none" and stats.delta == 0 and np.array_equal(dest, rows)


def test_consecutive_raw_pages_travel_as_a_bare_run_and_anything_else_in_the_batch_layout():
    rows = memory()
    rows[0] = 1  # (memory() starts with a zero page)
    encoder = BatchEncoder(MigrationSettings.dwcp(), 64, PAGE)
    run = encoder.encode_real(RealPages(np.arange(0, 3), rows[0:3]), FAST_LINK)
    assert run.run == (0, 3) and bytes(run.payload) == rows[0:3].tobytes()
    assert run.stats.bytes_out == 3 * PAGE  # no header, no tables
    gap = encoder.encode_real(RealPages(np.array([1, 3]), rows[[1, 3]]), FAST_LINK)
    with_zero = encoder.encode_real(RealPages(np.arange(3, 6), rows[3:6]), FAST_LINK)  # page 4 is zero
    assert gap.run is None and with_zero.run is None
    assert bytes(gap.payload[:4]) == bytes(with_zero.payload[:4]) == b"NCMB"


def test_a_run_is_sent_from_the_guests_memory_itself_marked_volatile():
    rows = memory()
    rows[0] = 1
    encoder = BatchEncoder(MigrationSettings.dwcp(), 64, PAGE)
    run = encoder.encode_real(RealPages(np.arange(0, 3), rows[0:3]), FAST_LINK)
    assert run.volatile and np.shares_memory(np.frombuffer(run.payload, np.uint8), rows)
    urgent = encoder.encode_real(RealPages(np.arange(0, 3), rows[0:3]), FAST_LINK, runs=False)
    assert urgent.run is None and not urgent.volatile  # a private copy, in the batch layout
    assert bytes(urgent.payload[:4]) == b"NCMB"


def test_batch_buffers_are_as_big_as_needed_and_reused():
    rows = memory(n=1024)
    rows[rows[:, 0] == 0, 0] = 1  # no zero page: every batch below is raw pages in the layout
    settings = MigrationSettings.dwcp(batch_bytes=32 << 20)
    encoder = BatchEncoder(settings, 1024, PAGE)
    scattered = np.arange(0, 1024, 2)  # 2 MiB of pages, not a run
    first = encoder.encode_real(RealPages(scattered, rows[scattered]), FAST_LINK)
    assert len(first.payload.obj) < 4 << 20, "not a whole 32 MiB batch buffer for 2 MiB of pages"
    buffer = first.payload.obj
    encoder.release(first.payload)
    again = encoder.encode_real(RealPages(scattered[:100], rows[scattered[:100]]), FAST_LINK)
    assert again.payload.obj is buffer, "the released buffer serves the next batch"
    encoder.release(again.payload)
    encoder.release(memoryview(bytearray(80 << 20)))  # an outsized batch's (more than two batches)
    assert encoder._free == [buffer], "an outsized buffer is not kept"


def test_a_buffer_reserved_before_the_stop_and_copy_serves_it():
    rows = memory(n=1024)
    rows[rows[:, 0] == 0, 0] = 1
    encoder = BatchEncoder(MigrationSettings.dwcp(), 1024, PAGE)
    encoder.reserve(512)
    assert encoder._free == [], "no real page encoded yet (a simulated VM needs no buffers)"
    run = np.arange(0, 256)
    encoder.release(encoder.encode_real(RealPages(run, rows[run]), FAST_LINK).payload)  # a run: no buffer
    encoder.reserve(512)
    (reserved,) = encoder._free
    encoder.reserve(256)
    assert encoder._free == [reserved], "a buffer that fits is kept, not doubled"
    scattered = np.arange(0, 1024, 2)  # the 512 pages the stop-and-copy then sends
    batch = encoder.encode_real(RealPages(scattered, rows[scattered]), FAST_LINK)
    assert batch.payload.obj is reserved and encoder._free == []


def test_the_baseline_sends_every_non_zero_page_raw():
    rows, dest = memory(), np.zeros((64, PAGE), np.uint8)
    stats = roundtrip(
        BatchEncoder(MigrationSettings.qemu_defaults(), 64, PAGE), dest, np.arange(64), rows, SLOW_LINK
    )
    assert stats.codec == "none" and stats.zero == 16 and stats.bytes_out >= 48 * PAGE
    assert np.array_equal(dest, rows)


def good_batch():
    rows = memory(8)
    return (
        BatchEncoder(MigrationSettings.dwcp(), 8, PAGE)
        .encode_real(RealPages(np.arange(8), rows), SLOW_LINK)
        .payload
    )


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda b: b[:10], "shorter than"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + b"\x09" + b[5:], "version"),
        (lambda b: b[:-100], "corrupt|truncated"),
        (lambda b: b[:-5] + bytes([b[-5] ^ 0xFF]) + b[-4:], "corrupt"),
    ],
)
def test_a_malformed_batch_raises_a_clear_error(mangle, message):
    with pytest.raises(BatchError, match=message):
        decode_real(mangle(good_batch()), 8, PAGE, lambda i: np.zeros((len(i), PAGE), np.uint8))


def test_a_batch_naming_a_page_outside_the_vm_is_refused():
    with pytest.raises(BatchError, match="names page"):
        decode_real(good_batch(), 4, PAGE, lambda i: np.zeros((len(i), PAGE), np.uint8))


def test_a_delta_against_the_wrong_base_is_refused_not_misapplied():
    rows, dest = memory(8), np.zeros((8, PAGE), np.uint8)
    encoder = BatchEncoder(MigrationSettings.dwcp(), 8, PAGE)
    roundtrip(encoder, dest, np.arange(8), rows, SLOW_LINK)
    rows[1, :16] = 9
    batch = encoder.encode_real(RealPages(np.array([1]), rows[[1]]), SLOW_LINK).payload
    with pytest.raises(BatchError, match="corrupt"):
        decode_real(batch, 8, PAGE, lambda i: np.full((len(i), PAGE), 3, np.uint8))  # not what was sent


def test_raw_pages_are_checked_when_asked():
    rows = memory(8)
    payload = bytearray(
        BatchEncoder(MigrationSettings.dwcp(checksum_raw_pages=True), 8, PAGE)
        .encode_real(RealPages(np.arange(8), rows), FAST_LINK)
        .payload
    )
    payload[-1] ^= 0x01  # a flipped bit in the last raw page
    with pytest.raises(BatchError, match="checksum mismatch"):
        decode_real(payload, 8, PAGE, lambda i: np.zeros((len(i), PAGE), np.uint8))


def test_by_default_raw_pages_rely_on_the_transports_checksums_but_lengths_are_still_checked():
    rows, dest = memory(8), np.zeros((8, PAGE), np.uint8)
    payload = bytes(
        BatchEncoder(MigrationSettings.dwcp(), 8, PAGE)
        .encode_real(RealPages(np.arange(8), rows), FAST_LINK)
        .payload
    )
    for pages in decode_real(payload, 8, PAGE, lambda i: dest[i]):
        dest[pages.ids] = pages.data
    assert np.array_equal(dest, rows)
    with pytest.raises(BatchError, match="truncated"):
        decode_real(payload[:-100], 8, PAGE, lambda i: dest[i])


def test_the_memory_digest_sees_a_single_changed_byte():
    from novacron.migration.driver import memory_digest

    memory_a = bytearray(3 << 20)
    memory_b = bytearray(memory_a)
    assert memory_digest(memory_a) == memory_digest(memory_b)
    memory_b[(2 << 20) + 5] = 1
    assert memory_digest(memory_a) != memory_digest(memory_b)
    assert memory_digest(bytearray(1 << 20)) != memory_digest(bytearray(2 << 20))  # the size counts


def test_zero_pages_are_found_even_when_a_page_starts_with_zero_bytes():
    from novacron.migration.pages import find_zero_pages

    rows = np.zeros((6, PAGE), np.uint8)
    rows[1, 0] = 1  # non-zero at once
    rows[2, PAGE - 1] = 1  # starts with zeros, non-zero in its last byte
    rows[3, 8] = 7  # non-zero right after the first word
    rows[5] = memory(8)[2]  # random content
    assert find_zero_pages(rows).tolist() == [True, False, False, False, True, False]


def test_zero_pages_are_found_among_chosen_rows_of_the_whole_memory():
    from novacron.migration.pages import find_zero_pages

    rows = np.zeros((6, PAGE), np.uint8)
    rows[2, PAGE - 1] = 1
    rows[3, 0] = 1
    assert find_zero_pages(rows, np.array([5, 2, 0, 3])).tolist() == [True, False, True, False]


@pytest.mark.parametrize("link", [SLOW_LINK, FAST_LINK])
@pytest.mark.parametrize("ids", [[9, 1, 2, 40, 33, 63, 12], [20, 21, 22, 23]], ids=["scattered", "a run"])
def test_pages_read_in_place_encode_exactly_as_a_copy_of_them_does(ids, link):
    """A real guest hands its scattered pages over as its whole memory plus their ids; the
    encoder copies each page once, straight into its batch. Same wire bytes as from a copy."""
    rows, ids = memory(), np.array(ids)
    settings = MigrationSettings.dwcp()
    copied, in_place = BatchEncoder(settings, 64, PAGE), BatchEncoder(settings, 64, PAGE)
    for encoder in (copied, in_place):  # a first round, so that re-sent pages may go as deltas
        encoder.encode_real(RealPages(np.arange(64), rows), link)
    rows[ids, 200:260] = 9
    a = copied.encode_real(RealPages(ids, rows[ids].copy()), link)
    b = in_place.encode_real(RealPages(ids, rows, in_place=True), link)
    assert bytes(a.payload) == bytes(b.payload)
    assert (a.run, a.stats) == (b.run, b.stats)


def test_copying_pages_read_in_place_takes_exactly_those_rows_and_refuses_rows_outside_memory():
    """The gather skips numpy's own index check (it would buffer the copy), so it checks first."""
    rows = memory()
    out = np.empty((3, PAGE), np.uint8)
    RealPages(np.array([63, 0, 7]), rows, in_place=True).copy_rows(np.array([0, 1, 2]), out)
    assert (out == rows[[63, 0, 7]]).all()
    for bad in ([64], [-1]):
        with pytest.raises(IndexError, match="outside 0..63"):
            RealPages(np.array(bad), rows, in_place=True).copy_rows(np.array([0]), out[:1])


def _pages_of(kinds, seed=3):
    gen = MemoryGenerator(seed)
    return np.frombuffer(b"".join(gen.page(k) for k in kinds), np.uint8).reshape(len(kinds), PAGE).copy()


@pytest.mark.parametrize("link", [SLOW_LINK, FAST_LINK])
@pytest.mark.parametrize(
    "kinds, ids, bare_on_a_fast_link",
    [
        (["random"] * 16, range(2, 14), True),  # a run of incompressible pages
        (["text"] * 16, range(0, 16), True),  # compressible, but no codec beats a fast link
        (["random"] * 7 + ["zero"] + ["random"] * 8, range(4, 12), False),  # a zero page inside
        (["random"] * 16, [1, 5, 6, 9], False),  # not a run
    ],
    ids=["random run", "text run", "run with a zero page", "scattered"],
)
def test_the_bare_run_shortcut_sends_exactly_what_the_full_encoder_would(
    kinds, ids, bare_on_a_fast_link, link
):
    """``bare_run`` answers only for a batch that goes as a bare run anyway (never on the slow
    link, where deltas or a codec pay); the wire bytes, stats and volatility are the general
    path's, and the payload is the guest's memory itself, not a copy."""
    rows, ids = _pages_of(kinds), np.array(list(ids))
    settings = MigrationSettings.dwcp()
    shortcut, general = BatchEncoder(settings, len(rows), PAGE), BatchEncoder(settings, len(rows), PAGE)
    pages = RealPages(ids, rows, in_place=True)
    bare = shortcut.bare_run(pages, link)
    assert (bare is not None) == (bare_on_a_fast_link and link == FAST_LINK)
    a = bare or shortcut.encode_real(pages, link, bare_checked=True)
    b = general.encode_real(pages, link, bare_checked=True)
    assert bytes(a.payload) == bytes(b.payload)
    assert (a.run, a.stats, bool(a.volatile)) == (b.run, b.stats, bool(b.volatile))
    if bare is not None:
        assert bare.run == (int(ids[0]), len(ids))
        assert np.shares_memory(np.frombuffer(bare.payload, np.uint8), rows)
