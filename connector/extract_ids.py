"""Duplicate and unprintable ids: the id pass over an extract, and the hash buckets it
and the data pass count ids in.

Duplicate externalIds must reject *every* row carrying them (never last-wins), which
needs one look at the whole id column before the first row is handed out. That pass
keeps only an 8-byte hash per row, in ``array`` buckets by the hash's low bits (so a
million rows cost about 8 MB, and each bucket is small to count), and the hashes are
dropped once the duplicate set is known. Python's per-process string hash is 64-bit: a
false duplicate among a million ids has a probability of about 3e-8, and it differs from
run to run, so it cannot stick.
"""

from __future__ import annotations

import _csv
import csv
import itertools
from array import array
from collections import Counter
from collections.abc import Collection
from itertools import repeat
from operator import itemgetter
from typing import Final, TextIO

from connector.extract_blocks import BLOCK_CHARS
from connector.extract_csv import check_csv_error, runaway_quote

__all__ = ["MASK", "IdCount", "count_id", "count_ids", "new_buckets", "repeats"]

_BUCKETS: Final = 256
#: a hash's bucket is ``h & MASK``
MASK: Final = _BUCKETS - 1
_first: Final = itemgetter(0)


def new_buckets() -> list[array[int]]:
    """Empty buckets for 8-byte id hashes (by their low bits, so each is small to count)."""
    return [array("q") for _ in range(_BUCKETS)]


def count_id(seen: list[array[int]], ext: str) -> None:
    """Count a non-empty, printable id (others are rejected as such, never as repeats)."""
    if ext and ext.isprintable():
        h = hash(ext)
        seen[h & MASK].append(h)


def repeats(buckets: list[array[int]], unclean: Collection[int]) -> tuple[set[int], int]:
    """The hashes seen more than once (but not in ``unclean``) and how many rows carry them.

    Empties each bucket once it is counted, so the hashes are freed as it goes.
    """
    dups: set[int] = set()
    rows = 0
    for i, bucket in enumerate(buckets):
        if len(set(bucket)) != len(bucket):
            for h, n in Counter(bucket).items():
                if n > 1 and h not in unclean:  # those are counted already
                    dups.add(h)
                    rows += n
        buckets[i] = array("q")
    return dups, rows


class IdCount:
    """What the id pass counted: the hashes of the clean ids, those of ids holding an
    unprintable character, how many data rows there are, and how many of them are
    already known to be rejected. (A plain class: a dataclass would add about 4 M
    instructions to every start.)"""

    __slots__ = ("buckets", "known_bad", "rows", "unclean")

    def __init__(self) -> None:
        self.buckets = new_buckets()
        self.unclean: set[int] = set()
        self.rows = 0
        self.known_bad = 0

    def result(self) -> tuple[set[int], int, int]:
        """The hashes the data pass rejects (repeated or unclean), the data rows, and the
        rows known to be rejected (for the early share check). Frees the buckets."""
        dups, repeated = repeats(self.buckets, self.unclean)
        return dups | self.unclean, self.rows, self.known_bad + repeated


def count_ids(
    text: TextIO, reader: _csv.Reader, ncols: int, idx: int, delim: str, label: str
) -> IdCount:
    """The id pass over ``text``, positioned after the header ``reader`` has read.

    Fast path while lines hold no quote: for such lines the csv module splits exactly on
    the delimiter, so the id is one ``str.split`` away. A block of lines that all have
    the header's field count is handled by C-level ``map()`` calls; other blocks line by
    line. From the first quote on, the csv reader takes over for the rest of the file.
    """
    count = IdCount()
    lineno = reader.line_num  # physical lines read so far (the header's)
    pending: list[str] | None = None
    want = ncols - 1
    while pending is None:
        lines = text.readlines(BLOCK_CHARS)
        if not lines:
            break
        if (
            want
            and '"' not in "".join(lines)
            and list(map(str.count, lines, repeat(delim))).count(want) == len(lines)
        ):
            _count_block(count, lines, idx, delim)
            lineno += len(lines)
            continue
        quoted = _count_lines(count, lines, ncols, idx, delim)
        if quoted is None:
            lineno += len(lines)
        else:
            pending = lines[quoted:]
            lineno += quoted
    if pending is not None:
        reader = csv.reader(itertools.chain(pending, text), delimiter=delim, strict=True)
    _count_parsed(count, reader, lineno, ncols, idx, label)
    return count


def _count_block(count: IdCount, lines: list[str], idx: int, delim: str) -> None:
    """Lines with no quote and the header's field count: ids taken by ``map()`` calls."""
    if idx == 0:
        fields = map(_first, map(str.partition, lines, repeat(delim)))
    else:
        split = map(str.split, lines, repeat(delim), repeat(idx + 1))
        fields = map(itemgetter(idx), split)
    _count_ids_of(count, list(map(str.strip, fields)))


def _count_lines(count: IdCount, lines: list[str], ncols: int, idx: int, delim: str) -> int | None:
    """Lines counted one by one up to the first holding a quote; that line's index, or
    None when no line holds one. A line with the wrong field count is a rejected row
    (unless blank)."""
    want = ncols - 1
    ids: list[str] = []
    odd = 0
    quoted: int | None = None
    for i, line in enumerate(lines):
        if '"' in line:
            quoted = i
            break
        if line.count(delim) != want:
            if line.strip():
                odd += 1
            continue
        if ncols == 1 and not line.strip():
            continue  # a blank line in a one-column file
        ids.append(line.split(delim, idx + 1)[idx])
    count.rows += odd
    count.known_bad += odd
    _count_ids_of(count, list(map(str.strip, ids)))
    return quoted


def _count_ids_of(count: IdCount, ids: list[str]) -> None:
    """One row per id: an empty or unprintable id is known to be rejected; the others
    are hashed into the buckets (one ``isprintable`` call for the whole list first)."""
    count.rows += len(ids)
    count.known_bad += ids.count("")
    if not "".join(ids).isprintable():
        count.unclean.update(hash(i) for i in ids if not i.isprintable())
        count.known_bad += sum(not i.isprintable() for i in ids)
    buckets = count.buckets
    mask = MASK
    for h in map(hash, filter(None, ids)):
        buckets[h & mask].append(h)


def _count_parsed(
    count: IdCount, reader: _csv.Reader, lineno: int, ncols: int, idx: int, label: str
) -> None:
    """The rest of the file through the csv reader (``lineno``: lines read before it)."""
    rows = known_bad = 0
    buckets, unclean, mask = count.buckets, count.unclean, MASK
    base = lineno
    while True:
        try:
            for row in reader:
                first = lineno + 1
                lineno = base + reader.line_num
                if len(row) != ncols:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if lineno > first:
                        raise runaway_quote(first, lineno, len(row), columns=ncols, label=label)
                    rows += 1
                    known_bad += 1
                    continue
                rows += 1
                ext = row[idx].strip()
                if not ext:
                    known_bad += 1
                    continue
                if not ext.isprintable():
                    unclean.add(hash(ext))
                    known_bad += 1
                    continue
                h = hash(ext)
                buckets[h & mask].append(h)
            break
        except csv.Error as exc:
            first = lineno + 1
            lineno = base + reader.line_num
            check_csv_error(exc, first, lineno, columns=ncols, label=label)
            rows += 1
            known_bad += 1
    count.rows += rows
    count.known_bad += known_bad
