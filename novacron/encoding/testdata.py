"""VM-memory-like data, seeded: zero pages, text-like pages, random pages, and re-dirtied pages.

Used by the HDE tests, benchmarks and calibration, and by migration experiments. Guest memory is
not random bytes: much of it is zero (never touched, or freed and scrubbed), much is text and
structured data (page cache, heap objects, code), and some is incompressible (compressed or
encrypted files, key material). Between migration rounds a dirtied page changes in clustered small
writes (a counter, a pointer, a record updated in place), not all over.

Everything comes from one ``numpy.random.Generator``, so a seed reproduces the exact bytes.

* ``text`` pages come in three styles: ``prose`` (English-like words drawn from a Zipf-distributed
  vocabulary of made-up words), ``code`` (indented source-like lines), ``records`` (arrays of
  64-byte C-like structs: counters, pointers sharing their high bits, flags, short names,
  timestamps, doubles).
* ``random`` pages are uniformly random bytes.
* :meth:`MemoryGenerator.resend` rewrites 1-10 % of a page's bytes in clustered writes of 1-64
  bytes around a few hot spots, writing bytes of the page's own class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

PAGE_SIZE = 4096
PageClass = Literal["zero", "text", "random"]
PAGE_CLASSES: tuple[PageClass, ...] = ("zero", "text", "random")
TextStyle = Literal["prose", "code", "records"]
TEXT_STYLES: tuple[TextStyle, ...] = ("prose", "code", "records")
#: A guest with a quarter of its memory zero and a fifth incompressible.
DEFAULT_MIX: Mapping[PageClass, float] = {"zero": 0.25, "text": 0.55, "random": 0.20}

_ONSETS = [
    "",
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "st",
    "tr",
    "ch",
]
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou", "ai", "io"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "ck", "m"]
_WRITE_LENGTHS = np.array([1, 2, 4, 8, 8, 8, 16, 32, 64])
_PROSE_MARKS = [" ", ", ", ". ", ".\n\n"]
_PROSE_MARK_CDF = np.cumsum([0.84, 0.07, 0.08, 0.01])
_CODE_LINES = [
    "def {0}_{1}({2}, {3}):",
    "if {0}_{1}({2}) > {n}:",
    "for {0} in {1}.{2}_{3}:",
    "{0} = {1}.{2}_{3}({n})",
    "self.{0}[{1}] += {n}",
    "return {0}_{1}({2}, {3})",
    "# {0} {1} {2} {3}",
]
_RECORD = np.dtype(
    [
        ("id", "<u8"),
        ("next", "<u8"),
        ("stamp", "<u8"),
        ("flags", "<u4"),
        ("refs", "<u4"),
        ("name", "S24"),
        ("value", "<f8"),
    ]
)


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        syllables = rng.integers(1, 4)
        words.add(
            "".join(
                _ONSETS[rng.integers(len(_ONSETS))]
                + _VOWELS[rng.integers(len(_VOWELS))]
                + _CODAS[rng.integers(len(_CODAS))]
                for _ in range(syllables)
            )
        )
    return sorted(words)


@dataclass
class MemoryGenerator:
    """Seeded source of VM-memory-like pages (see the module docstring)."""

    seed: int | np.random.Generator = 0
    page_size: int = PAGE_SIZE
    vocabulary_size: int = 2000
    rng: np.random.Generator = field(init=False, repr=False)
    words: list[str] = field(init=False, repr=False)
    _word_cdf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = (
            self.seed if isinstance(self.seed, np.random.Generator) else np.random.default_rng(self.seed)
        )
        self.words = _vocabulary(self.rng, self.vocabulary_size)
        ranks = np.arange(1, self.vocabulary_size + 1, dtype=float)
        weights = ranks**-1.07  # Zipf, as in natural text
        self._word_cdf = np.cumsum(weights) / np.sum(weights)

    # -- single pages ---------------------------------------------------------------------
    def page(self, kind: PageClass, style: TextStyle | None = None) -> bytes:
        """One page of class ``kind``; a text page has ``style`` or a random one."""
        if kind == "zero":
            return bytes(self.page_size)
        if kind == "random":
            return self.rng.bytes(self.page_size)
        if kind == "text":
            style = style or TEXT_STYLES[self.rng.integers(len(TEXT_STYLES))]
            if style not in TEXT_STYLES:
                raise ValueError(f"unknown text style {style!r}; use one of {TEXT_STYLES}")
            return getattr(self, f"_{style}")()
        raise ValueError(f"unknown page class {kind!r}; use one of {PAGE_CLASSES}")

    def _draw_words(self, n: int) -> list[str]:
        drawn = np.searchsorted(self._word_cdf, self.rng.random(n), side="right")
        return [self.words[i] for i in np.minimum(drawn, self.vocabulary_size - 1).tolist()]

    def _fit(self, text: str) -> bytes:
        data = text.encode()
        while len(data) < self.page_size:  # rare: a short draw; pad with more of the same style
            data += data
        return data[: self.page_size]

    def _prose(self) -> bytes:
        words = self._draw_words(self.page_size // 4)
        marks = np.searchsorted(_PROSE_MARK_CDF, self.rng.random(len(words)), side="right")
        marks = np.minimum(marks, len(_PROSE_MARKS) - 1).tolist()  # the CDF may end a hair below 1
        out = []
        capital = True
        for word, mark in zip(words, marks, strict=True):
            out.append((word.capitalize() if capital else word) + _PROSE_MARKS[mark])
            capital = mark >= 2
        return self._fit("".join(out))

    def _code(self) -> bytes:
        lines_per_page = self.page_size // 24
        words = self._draw_words(4 * lines_per_page)
        shape = self.rng.integers(0, 1000, size=(lines_per_page, 3)).tolist()
        lines = []
        for i, (indent, number, template) in enumerate(shape):
            w = words[4 * i : 4 * i + 4]
            lines.append(
                "    " * (indent % 4) + _CODE_LINES[template % len(_CODE_LINES)].format(*w, n=number)
            )
        return self._fit("\n".join(lines) + "\n")

    def _records(self) -> bytes:
        n = -(-self.page_size // _RECORD.itemsize)
        rec = np.zeros(n, dtype=_RECORD)
        first = int(self.rng.integers(0, 1 << 20))
        rec["id"] = np.arange(first, first + n)
        heap = 0x7F00_0000_0000 + (int(self.rng.integers(0, 1 << 24)) << 12)
        rec["next"] = heap + self.rng.integers(0, 1 << 16, size=n) * 8  # pointers into one heap
        rec["stamp"] = 1_700_000_000_000 + np.cumsum(self.rng.integers(0, 5000, size=n))
        rec["flags"] = self.rng.choice([0, 1, 0x10, 0x11, 0x8000], size=n)
        rec["refs"] = self.rng.geometric(0.4, size=n)
        rec["name"] = [w.encode()[:23] for w in self._draw_words(n)]
        rec["value"] = np.round(self.rng.normal(100, 30, size=n), 2)
        return rec.tobytes()[: self.page_size]

    # -- many pages ------------------------------------------------------------------------
    def pages(self, n: int, mix: Mapping[PageClass, float] = DEFAULT_MIX) -> list[tuple[PageClass, bytes]]:
        """``n`` pages with classes drawn from ``mix`` (shares, normalised); each with its class."""
        classes = list(mix)
        p = np.array([mix[c] for c in classes], dtype=float)
        drawn = self.rng.choice(len(classes), size=n, p=p / p.sum())
        return [(classes[i], self.page(classes[i])) for i in drawn]

    def memory(self, n_pages: int, mix: Mapping[PageClass, float] = DEFAULT_MIX) -> bytes:
        """A contiguous memory image of ``n_pages`` pages drawn from ``mix``."""
        return b"".join(page for _, page in self.pages(n_pages, mix))

    # -- re-sent pages ---------------------------------------------------------------------
    def resend(self, page: bytes, fraction: float, kind: PageClass = "text") -> bytes:
        """``page`` after clustered small writes that change ``fraction`` of its bytes.

        Writes of 1-64 bytes land near a few hot spots (about one per 256 changed bytes), each
        capped so the changed share does not overshoot; they write bytes of class ``kind``
        (a zero page is written with text, as when fresh memory gets filled).
        """
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be within [0, 1], got {fraction}")
        n = len(page)
        if n != self.page_size:
            raise ValueError(f"resend expects a {self.page_size}-byte page, got {n} bytes")
        target = round(fraction * n)
        source = np.frombuffer(self.page("random" if kind == "random" else "text"), np.uint8)
        old = np.frombuffer(page, np.uint8)
        new = old.copy()
        hot = self.rng.integers(0, n, size=1 + target // 256)
        changed = 0
        stalled = 0
        while changed < target:
            # Draw a batch of writes at once (numpy per-call overhead dominates single draws).
            lengths = self.rng.choice(_WRITE_LENGTHS, size=16).tolist()
            centers = (hot[self.rng.integers(len(hot), size=16)] + self.rng.normal(0, 96, size=16)).astype(
                int
            )
            for length, center in zip(lengths, centers.tolist(), strict=True):
                length = min(target - changed, length)
                start = min(max(0, center - center % min(length, 8)), n - length)
                new[start : start + length] = source[start : start + length]
                now = int(np.count_nonzero(new != old))
                stalled = 0 if now > changed else stalled + 1
                if stalled > 64:  # the source agrees with the page here; write random bytes instead
                    source = np.frombuffer(self.rng.bytes(n), np.uint8)
                changed = now
                if changed >= target:
                    break
        return new.tobytes()
