"""Streaming reader for HR extracts (CSV): encodings, delimiter sniffing, row rejection.

Memory stays flat with the number of rows: rows are parsed and handed on one at a
time. Duplicate externalIds must reject *every* row carrying them (never last-wins), so
the id column is read first (:mod:`connector.extract_ids`: an 8-byte hash per row, dropped
once the duplicate set is known). A caller that can start over (``connector preview``)
asks for ``ids_in_pass`` instead: the same hashes are kept while the rows are handed out,
and only when an id repeats is the file read a second time
(:class:`~connector.errors.ReadAgainError`).

Row-level problems (wrong field count, empty id, oversized field, duplicate id,
malformed quoting within one line) are data: each becomes a :class:`RejectedRow` with its
line number (:mod:`connector.extract_rejects`) and the rest of the file goes on.
File-level problems (undecodable bytes, bad header, too many rejected rows, a quote left
open: :mod:`connector.extract_csv` says why that one is file-level) raise
:class:`~connector.errors.ExtractError`.

The rest of the reading lives next to this module: opening and decoding
(:mod:`~connector.extract_source`), the header (:mod:`~connector.extract_header`), the
``str.split`` fast path (:mod:`~connector.extract_blocks`), control characters
(:mod:`~connector.extract_controls`).
"""

from __future__ import annotations

import _csv
import csv
import itertools
from array import array
from collections.abc import Callable, Collection, Generator, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

from connector.errors import ExtractError, ReadAgainError, RejectedShareExceededError
from connector.extract_blocks import BLOCK_CHARS, split_block
from connector.extract_controls import NulWatch
from connector.extract_csv import check_csv_error, ensure_field_limit, runaway_quote
from connector.extract_header import checked_header, header_hint, header_reader
from connector.extract_ids import MASK, count_id, count_ids, new_buckets, repeats
from connector.extract_profile import (
    DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_REJECTED_SHARE,
    SNIFFED_DELIMITERS,
    ExtractProfile,
    encoding_problem,
)
from connector.extract_rejects import Rejections
from connector.extract_rows import ExtractStats, RejectedRow, RejectReason, Row
from connector.extract_source import (
    Source,
    decode_error,
    detect_encoding,
    open_source,
    text_of,
)

__all__ = [
    "DEFAULT_MAX_FIELD_BYTES",
    "DEFAULT_MAX_REJECTED_SHARE",
    "MAX_REJECTED_IN_ERROR",
    "SNIFFED_DELIMITERS",
    "ExtractProfile",
    "ExtractReader",
    "ExtractStats",
    "RejectReason",
    "RejectedRow",
    "Row",
    "encoding_problem",
    "read_extract",
]

#: how many rejected rows a :class:`RejectedShareExceededError` carries (the first, in file order)
MAX_REJECTED_IN_ERROR: Final = RejectedShareExceededError.MAX_LISTED

_T = TypeVar("_T")
#: ``make(line, values)`` for :meth:`ExtractReader.iter_mapped`; None means "rejected, skip".
#: ``values`` is a ``dict[str, str]``, or a ``list[str]`` when iterating ``as_list``.
RowHandler = Callable[[int, Any], _T | None]

if TYPE_CHECKING:
    #: What a data pass hands out: ``make`` (None: :class:`Row` objects), the column names
    #: and the pick of their fields (None: every field), the id's key among the values and
    #: its position in a row (-1: no id column), whether values are lists; and the ids it
    #: rejects: hashes known to repeat, or the buckets it counts ids in (None: not counted
    #: in the pass). A plain tuple (a NamedTuple class would add about 2.7 M instructions to
    #: every start).
    _Handout = tuple[
        RowHandler[_T] | None,
        list[str],
        Callable[[list[str]], tuple[str, ...]] | None,
        str | int,
        bool,
        int,
        set[int],
        list[array[int]] | None,
    ]


class ExtractReader:
    """An opened extract: ``header`` is known at once; iterate once for :class:`Row` objects.

    ``rejected`` and ``stats`` fill in while iterating. With ``check_rejected_share``
    the share cap is enforced after the last row, raising
    :class:`RejectedShareExceededError` (a
    :class:`~connector.errors.TooManyRejectedRowsError`).
    When the id pass alone proves the file is over the cap, that is raised before the
    first row, whatever ``check_rejected_share`` says (nothing should be applied); the
    file is then read once more without handing rows out, so the error and
    ``rejected`` still list the rejected rows (the first :data:`MAX_REJECTED_IN_ERROR`)
    with their line numbers. Error messages name ``label`` (the file the user dropped)
    rather than the path actually read.
    """

    def __init__(
        self,
        source: Source,
        profile: ExtractProfile | None = None,
        *,
        id_column: str | None = None,
        check_rejected_share: bool = True,
        label: str | None = None,
    ) -> None:
        self.profile = profile or ExtractProfile()
        ensure_field_limit(self.profile.max_field_bytes)
        self.id_column = id_column if id_column is not None else self.profile.id_column
        self.check_rejected_share = check_rejected_share
        self._iterated = False
        self._opener, self.label, self._spool = open_source(source, label)
        with self._opener() as raw:
            head = raw.read(4)
        self.encoding = detect_encoding(head, self.profile.encoding)
        self.header, self.delimiter = self._read_header()
        self._rejections = Rejections(self.header, self.id_column, self.delimiter)
        if self.id_column is not None and self.id_column not in self.header:
            raise ExtractError(
                f"id column {self.id_column!r} is not among the {len(self.header)} columns of"
                " the header" + header_hint(self.header, self.id_column),
                path=self.label,
                line=1,
            )

    @property
    def rejected(self) -> list[RejectedRow]:
        """The rejected rows so far, in file order."""
        return self._rejections.rejected

    @property
    def stats(self) -> ExtractStats:
        """The counts of the pass so far."""
        return self._rejections.stats

    def close(self) -> None:
        """Release the temporary copy of a non-seekable stream, if one was made."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> ExtractReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode_error(self, exc: UnicodeError) -> ExtractError:
        return decode_error(exc, self._opener, self.encoding, self.profile.encoding, self.label)

    def _read_header(self) -> tuple[list[str], str]:
        with self._opener() as raw:
            text = text_of(raw, self.encoding)
            try:
                _, raw_header, delimiter = header_reader(text, self.profile.delimiter, self.label)
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        return checked_header(raw_header, self.label), delimiter

    def _duplicate_hashes(self) -> tuple[set[int], int, int]:
        """The id pass (:func:`connector.extract_ids.count_ids`): hashes of ids seen more
        than once, and of ids holding an unprintable character (the data pass rejects both
        by hash, at no cost to clean rows); how many data rows there are and how many of
        them the id pass already knows will be rejected (for the early share check).
        """
        assert self.id_column is not None
        idx = self.header.index(self.id_column)
        with self._opener() as raw:
            text = text_of(raw, self.encoding)
            try:
                reader, _, _ = header_reader(text, self.delimiter, self.label)
                count = count_ids(text, reader, len(self.header), idx, self.delimiter, self.label)
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        return count.result()

    def _over_cap(self, rejected: int, rows: int) -> bool:
        return rows > 0 and rejected / rows > self.profile.max_rejected_share

    def share_error(self, rejected: int, rows: int) -> RejectedShareExceededError:
        """The error for ``rejected`` of ``rows`` over the cap (for callers adding rejections).

        It carries the rejected rows recorded so far (the first :data:`MAX_REJECTED_IN_ERROR`)
        and a copy of :attr:`stats`, so an error file can list line numbers.
        """
        share = self.profile.max_rejected_share
        return RejectedShareExceededError(
            f"{rejected} of {rows} rows rejected ({rejected / rows:.1%}), over the cap of "
            f"{share:.1%}; the file is not applied. Fix the extract or raise "
            "extract.max_rejected_share in the mapping",
            path=self.label,
            rejected=self.rejected,
            stats=self.stats,
        )

    def add_rejected(self, line: int, external_id: str, reason: str, message: str) -> None:
        """Record a rejected row (also used by callers that reject rows after mapping).

        Every rejection is counted in :attr:`stats`; :attr:`rejected` lists at most
        ``keep_rejected`` of them when that limit is set (None: all).
        """
        self._rejections.add(line, external_id, reason, message)

    def __iter__(self) -> Iterator[Row]:
        return self.iter_mapped(None)

    def iter_mapped(
        self,
        make: RowHandler[_T] | None,
        *,
        max_rejected_share: float | None = None,
        columns: Collection[str] | None = None,
        as_list: bool = False,
        ids_in_pass: bool = False,
        duplicates: Collection[int] | None = None,
    ) -> Iterator[_T]:
        """Iterate once, handing each accepted row to ``make(line, values)``.

        Yields what ``make`` returns, skipping None (``make`` then recorded the row as
        rejected with :meth:`add_rejected`); ``stats.rows_accepted`` counts the rows
        yielded. With ``make`` None, yields :class:`Row` objects. For layers that map
        rows as they are read (one loop instead of stacked generators).
        ``max_rejected_share`` checks that share after the last row instead of the
        profile's (when ``check_rejected_share`` is set). ``columns`` limits ``values``
        to those columns (plus the id column): less to trim and copy per row when the
        caller reads only some of them. With ``as_list``, ``values`` is a list in
        :meth:`selected_columns` order instead of a dict (for :meth:`Mapping.bind
        <connector.mapping.Mapping.bind>`), which saves building a dict per row.

        Duplicate ids: by default the id column is read first, so no row carrying a
        repeated id is ever handed out. A caller that can start over passes
        ``ids_in_pass``: the file is then read once, the ids are counted as rows go by,
        and when one repeats, :class:`~connector.errors.ReadAgainError` is raised after
        the last row (before the share check), carrying ``duplicates`` for the second
        read, which rejects every row with such an id (and reads nothing twice more).
        """
        if self._iterated:
            raise RuntimeError(
                "an ExtractReader can be iterated only once; call read_extract again"
            )
        self._iterated = True
        share = max_rejected_share
        if share is None and self.check_rejected_share:
            share = self.profile.max_rejected_share
        known = None if duplicates is None else set(duplicates)
        return self._data_pass(
            make, share, known, columns=columns, as_list=as_list, ids_in_pass=ids_in_pass
        )

    def selected_columns(self, columns: Collection[str] | None) -> list[str]:
        """The columns, in header order, that :meth:`iter_mapped` hands over for ``columns``."""
        if columns is None:
            return list(self.header)
        wanted = {*columns}
        if self.id_column is not None:
            wanted.add(self.id_column)
        keep = [name for name in self.header if name in wanted]
        return keep if len(keep) > 1 else list(self.header)

    def _refuse_early(self, dups: set[int]) -> RejectedShareExceededError:
        """Read the refused file once more, handing nothing out, to list its rejected rows.

        Only on a refused file, so the extra pass costs nothing on the normal path; memory
        stays bounded: only the first :data:`MAX_REJECTED_IN_ERROR` rows are kept, the rest
        are counted.
        """
        self._rejections.keep = MAX_REJECTED_IN_ERROR
        for _ in self._data_pass(None, None, dups):
            pass  # rows_accepted then counts rows that passed the checks, though none is used
        return self.share_error(self.stats.rows_rejected, self.stats.rows_read)

    def _handout(
        self,
        make: RowHandler[_T] | None,
        dups: set[int] | None,
        columns: Collection[str] | None,
        as_list: bool,
        ids_in_pass: bool,
    ) -> _Handout[_T]:
        """What the data pass hands out and which ids it rejects; runs the id pass when
        the repeated ids are neither given nor counted in the pass."""
        header = self.header
        names = self.selected_columns(columns)
        pick: Callable[[list[str]], tuple[str, ...]] | None = None
        if len(names) < len(header):
            pick = itemgetter(*(header.index(n) for n in names))
        id_key: str | int = self.id_column or ""
        if as_list and self.id_column is not None:
            id_key = names.index(self.id_column)
        seen: list[array[int]] | None = None
        if dups is None:
            dups = set()
            if self.id_column is not None and ids_in_pass:
                seen = new_buckets()
            elif self.id_column is not None:
                dups, rows, known_bad = self._duplicate_hashes()
                if self._over_cap(known_bad, rows):  # proven before any row is handed out
                    raise self._refuse_early(dups)
        idx = header.index(self.id_column) if self.id_column is not None else -1
        return make, names, pick, id_key, as_list, idx, dups, seen

    def _after_pass(self, seen: list[array[int]] | None, share: float | None) -> None:
        """Once every row is out: ids counted in the pass that repeat, then the share cap."""
        if seen is not None:
            repeated, _ = repeats(seen, ())
            if repeated:
                raise ReadAgainError(
                    f"{self.id_column} repeats on some rows; read the file again to reject them",
                    path=self.label,
                    duplicates=repeated,
                )
        if share is not None:
            rows, bad = self.stats.rows_read, self.stats.rows_rejected
            if rows and bad / rows > share:
                raise self.share_error(bad, rows)

    def _data_pass(
        self,
        make: RowHandler[_T] | None,
        share: float | None,
        dups: set[int] | None = None,
        columns: Collection[str] | None = None,
        as_list: bool = False,
        ids_in_pass: bool = False,
    ) -> Iterator[_T]:
        """The id pass (unless ``dups`` is given or ids are counted in this pass), then
        every row, then the checks after the last row.

        Blocks of lines :func:`~connector.extract_blocks.split_block` can split go first
        (:meth:`_split_rows`); from the first other block on, the csv reader parses the
        rest of the file (:meth:`_parsed_rows`). Handing their rows on through
        ``yield from`` costs 0.1-0.3 % of a preview row's instructions (``docs/benchmarks.md``).
        """
        out = self._handout(make, dups, columns, as_list, ids_in_pass)
        with self._opener() as raw:
            text = text_of(raw, self.encoding)
            nul = NulWatch()  # set once a block of lines holds a NUL
            try:
                header_rows, _, _ = header_reader(text, self.delimiter, self.label)
                lineno = header_rows.line_num  # physical lines of the header
                lineno, pending = yield from self._split_rows(out, text, nul, lineno)
                if pending is not None:
                    blocks = itertools.chain.from_iterable(nul.blocks(pending, text, BLOCK_CHARS))
                    reader = csv.reader(blocks, delimiter=self.delimiter, strict=True)
                    yield from self._parsed_rows(out, reader, nul, lineno)
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        self._after_pass(out[-1], share)  # out[-1]: the buckets ids were counted in

    def _split_rows(
        self, out: _Handout[_T], text: TextIO, nul: NulWatch, lineno: int
    ) -> Generator[_T, None, tuple[int, list[str] | None]]:
        """The rows of the blocks ``str.split`` can split, in one loop; returns the last
        line number and the first block it cannot split (None at the end of the file).

        No size check: no field is longer than its line, which is at most a quarter of
        the byte cap.
        """
        make, names, pick, id_key, as_list, idx, dups, seen = out
        ncols = len(self.header)
        quick_cap = self.profile.max_field_bytes // 4  # n chars are at most 4n UTF-8 bytes
        stats = self.stats
        rejects = self._rejections
        strip = str.strip
        delim = self.delimiter
        while True:
            lines = text.readlines(BLOCK_CHARS)
            if not lines:
                return lineno, None
            split = split_block(lines, ncols, quick_cap, delim, nul)
            if split is None:
                return lineno, lines
            for row in split:
                lineno += 1
                if len(row) != ncols:
                    rejects.shape(lineno, row, idx)
                    continue
                fields = pick(row) if pick else row
                values: Any = (
                    list(map(strip, fields)) if as_list else dict(zip(names, map(strip, fields)))  # noqa: B905 - same length
                )
                if idx >= 0:
                    ext = values[id_key]
                    if seen is not None:
                        if not ext or not ext.isprintable():
                            rejects.bad_id(lineno, ext)
                            continue
                        h = hash(ext)
                        seen[h & MASK].append(h)
                    elif not ext or (dups and hash(ext) in dups):
                        rejects.bad_id(lineno, ext)
                        continue
                if make is None:
                    stats.rows_accepted += 1
                    yield Row(lineno, values)  # type: ignore[misc]
                else:
                    result = make(lineno, values)
                    if result is not None:
                        stats.rows_accepted += 1
                        yield result

    def _parsed_rows(
        self, out: _Handout[_T], reader: _csv.Reader, nul: NulWatch, lineno: int
    ) -> Iterator[_T]:
        """The rows ``reader`` parses from the first block on (``lineno``: lines before it),
        every field measured; a parse error within one line is a malformed row."""
        make, names, pick, id_key, as_list, idx, dups, seen = out
        ncols = len(self.header)
        cap = self.profile.max_field_bytes
        quick_cap = cap // 4
        stats = self.stats
        rejects = self._rejections
        strip = str.strip
        base = lineno
        while True:
            try:
                for row in reader:
                    line = lineno + 1
                    lineno = base + reader.line_num
                    if len(row) != ncols:
                        if lineno > line and not (len(row) == 1 and not row[0].strip()):
                            raise runaway_quote(
                                line, lineno, len(row), columns=ncols, label=self.label
                            )
                        rejects.shape(line, row, idx)
                        continue
                    if seen is not None:
                        count_id(seen, row[idx].strip())
                    if max(map(len, row)) > quick_cap and rejects.too_large(line, row, idx, cap):
                        continue
                    if nul.found and rejects.control(line, row, idx):
                        continue
                    fields = pick(row) if pick else row
                    values: Any = (
                        list(map(strip, fields))
                        if as_list
                        else dict(zip(names, map(strip, fields)))  # noqa: B905
                    )
                    if idx >= 0:
                        ext = values[id_key]
                        if (
                            not ext
                            or (seen is not None and not ext.isprintable())
                            or (dups and hash(ext) in dups)
                        ):
                            rejects.bad_id(line, ext)
                            continue
                    if make is None:
                        stats.rows_accepted += 1
                        yield Row(line, values)  # type: ignore[misc]
                    else:
                        result = make(line, values)
                        if result is not None:
                            stats.rows_accepted += 1
                            yield result
                return
            except csv.Error as exc:
                line = lineno + 1
                lineno = base + reader.line_num
                check_csv_error(exc, line, lineno, columns=ncols, label=self.label)
                rejects.unparsed(exc, line, cap)


def read_extract(
    source: Source,
    profile: ExtractProfile | None = None,
    *,
    id_column: str | None = None,
    check_rejected_share: bool = True,
    label: str | None = None,
) -> ExtractReader:
    """Open an extract for streaming; see :class:`ExtractReader`.

    ``source`` is a path or a binary stream (a non-seekable stream is spooled to a
    temporary file, since the duplicate check reads the id column first). ``id_column``
    overrides ``profile.id_column``. Raises :class:`~connector.errors.ExtractError`
    at once for an unreadable file or a bad header.
    """
    return ExtractReader(
        source, profile, id_column=id_column, check_rejected_share=check_rejected_share, label=label
    )
