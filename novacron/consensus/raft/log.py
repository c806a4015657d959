"""The in-memory Raft log: entries after a compaction point.

Indexes start at 1. Everything up to ``offset`` was compacted into a
snapshot; only the term at ``offset`` is still known (``offset_term``), which
is exactly what the consistency check of the first AppendEntries after it
needs. The node's storage holds the same entries durably; the core works
on this copy and tells its host what to write (see :class:`~.core.Ready`).
"""

from __future__ import annotations

from collections.abc import Iterable

from .messages import Entry, entry_size


class RaftLog:
    def __init__(self, offset: int = 0, offset_term: int = 0, entries: Iterable[Entry] = ()) -> None:
        self.offset = offset
        self.offset_term = offset_term
        self.entries: list[Entry] = list(entries)
        for k, e in enumerate(self.entries):
            if e.index != offset + 1 + k:
                raise ValueError(
                    f"log entries are not contiguous after {offset}: entry {k} has index {e.index}"
                )

    # -- reading ------------------------------------------------------------------------------
    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term of the entry at ``index``; None if compacted away or beyond the end."""
        if index == self.offset:
            return self.offset_term
        if self.offset < index <= self.last_index:
            return self.entries[index - self.offset - 1].term
        return None

    def entry(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, lo: int, hi: int) -> list[Entry]:
        """Entries with ``lo <= index < hi`` (all present: ``lo > offset``)."""
        return self.entries[lo - self.offset - 1 : hi - self.offset - 1]

    def batch(self, lo: int, max_bytes: int) -> list[Entry]:
        """Entries from ``lo`` of at most ``max_bytes`` (estimated), but at least one."""
        out: list[Entry] = []
        size = 0
        for e in self.entries[lo - self.offset - 1 :]:
            size += entry_size(e)
            if out and size > max_bytes:
                break
            out.append(e)
        return out

    def match_term(self, index: int, term: int) -> bool:
        t = self.term(index)
        return t is not None and t == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a log ending at (``last_index``, ``last_term``) at least as up to date as ours (§5.4.1)?"""
        return last_term > self.last_term or (last_term == self.last_term and last_index >= self.last_index)

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The last entry at or before ``index`` whose term is <= ``term``, as (index, term).

        Used on both sides of a rejected AppendEntries to skip a whole term of
        mismatching entries per round trip instead of one entry (etcd's fast backtracking).
        """
        index = min(index, self.last_index)
        while index > self.offset:
            t = self.entries[index - self.offset - 1].term
            if t <= term:
                return index, t
            index -= 1
        return self.offset, self.offset_term

    # -- writing ------------------------------------------------------------------------------
    def append(self, entries: list[Entry]) -> int:
        """Append entries that follow ``last_index``."""
        if entries and entries[0].index != self.last_index + 1:
            raise ValueError(f"entry {entries[0].index} does not follow the last index {self.last_index}")
        self.entries.extend(entries)
        return self.last_index

    def merge(self, entries: list[Entry]) -> int:
        """Append a leader's entries, dropping our conflicting suffix (Figure 2, rule 3 of
        AppendEntries). Entries we already hold are skipped, so a duplicate or reordered
        (older) AppendEntries never truncates anything. Returns the first index written,
        or 0 if nothing changed."""
        for k, e in enumerate(entries):
            t = self.term(e.index)
            if t is None and e.index <= self.offset:
                continue  # compacted: committed, so it matches
            if t == e.term:
                continue
            if t is not None:  # a conflict: drop it and everything after
                del self.entries[e.index - self.offset - 1 :]
            self.entries.extend(entries[k:])
            return e.index
        return 0

    def compact(self, upto: int) -> None:
        """Drop entries up to and including ``upto`` (they are in a snapshot)."""
        if upto <= self.offset:
            return
        if upto > self.last_index:
            raise ValueError(f"cannot compact up to {upto}: the log ends at {self.last_index}")
        self.offset_term = self.entry(upto).term
        del self.entries[: upto - self.offset]
        self.offset = upto

    def restore(self, index: int, term: int) -> None:
        """Replace the whole log by a snapshot's end point."""
        self.offset, self.offset_term, self.entries = index, term, []
