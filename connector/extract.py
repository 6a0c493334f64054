"""Streaming reader for HR extracts (CSV): encodings, delimiter sniffing, row rejection.

Memory stays flat with the number of rows: rows are parsed and handed on one at a
time. Duplicate externalIds must reject *every* row carrying them (never last-wins),
which needs one look at the whole id column before the first row is handed out; that
first pass keeps only an 8-byte hash per row (in ``array`` buckets), so a million rows
cost about 8 MB, and the hashes are dropped once the duplicate set is known. A caller
that can start over (``connector preview``) asks for ``ids_in_pass`` instead: the same
hashes are kept while the rows are handed out, and only when an id repeats is the file
read a second time (:class:`~connector.errors.ReadAgainError`).

Row-level problems (wrong field count, empty id, oversized field, duplicate id,
malformed quoting within one line) are data: each becomes a :class:`RejectedRow` with its
line number and the rest of the file goes on. File-level problems (undecodable bytes, bad
header, too many rejected rows, a quote left open) raise
:class:`~connector.errors.ExtractError`.

A quote left open is file-level on purpose. The parser then reads the following lines
as one value, so the people on them vanish from the file, and a full sync would disable
them as leavers; rejecting one row would hide that. The csv parser runs in strict mode:
a quote never closed fails at the end of the file, and one closed by a later, unrelated
quote fails where text follows that quote. Either failure on a row that runs over more
than one line, or such a row with the wrong field count, raises "unterminated quote
starting at line N (lines N-M)". The id pass meets it first, so no row is handed out.
Quoted values over several lines with the right field count are still read (CSV allows
them). What no parser can tell apart from such a value: a stray quote closed exactly at
the end of a later field in the same column; the sync engine's mass-change guard is the
backstop for that.

Rejection messages never quote field values, so they can be logged without personal
data, and a rejected row shows its id only when it looks like one (at most 256
characters, no newline or delimiter).
"""

from __future__ import annotations

import _csv
import codecs
import csv
import io
import itertools
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, Final, NamedTuple, TypeVar

from connector.errors import ExtractError, ReadAgainError, RejectedShareExceededError
from connector.extract_controls import (
    NulWatch,
    control_columns,
    describe_unprintable,
    shown_id,
)
from connector.extract_header import duplicate_positions, header_hint

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

DEFAULT_MAX_FIELD_BYTES: Final = 4096
DEFAULT_MAX_REJECTED_SHARE: Final = 0.05
SNIFFED_DELIMITERS: Final = (",", ";", "\t", "|")

#: how many rejected rows a :class:`RejectedShareExceededError` carries (the first, in file order)
MAX_REJECTED_IN_ERROR: Final = RejectedShareExceededError.MAX_LISTED

_BUCKETS: Final = 256
_SPOOL_BYTES: Final = 8 * 1024 * 1024


class RejectReason:
    """Reason codes of rejected rows (stable strings: they appear in reports and rejected.csv)."""

    FIELD_COUNT: Final = "field_count"
    EMPTY_EXTERNAL_ID: Final = "empty_external_id"
    FIELD_TOO_LARGE: Final = "field_too_large"
    DUPLICATE_EXTERNAL_ID: Final = "duplicate_external_id"
    MALFORMED_ROW: Final = "malformed_row"
    TRANSFORM_FAILED: Final = "transform_failed"
    INVALID_VALUE: Final = "invalid_value"
    OPERATION_TOO_LARGE: Final = "operation_too_large"
    CONTROL_CHARACTER: Final = "control_character"


@dataclass(frozen=True, slots=True)
class ExtractProfile:
    """How to read one source's extracts (the ``extract:`` section of a mapping file).

    ``encoding`` None means UTF-8 (BOM optional) or UTF-16 when a BOM says so; any other
    encoding is used only when named here. ``delimiter`` None means sniffed from the
    header among :data:`SNIFFED_DELIMITERS`. ``id_column`` is the column whose values
    must be non-empty and unique (normally the mapping's externalId column). ``sheet``
    names the sheet of an ``.xlsx`` extract (None: the first sheet; ignored for CSV).
    """

    encoding: str | None = None
    delimiter: str | None = None
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES
    max_rejected_share: float = DEFAULT_MAX_REJECTED_SHARE
    id_column: str | None = None
    sheet: str | None = None

    def __post_init__(self) -> None:
        if self.encoding is not None:
            problem = encoding_problem(self.encoding)
            if problem is not None:
                raise ValueError(problem)
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'):
            raise ValueError("delimiter must be one character other than a quote or newline")
        if self.max_field_bytes < 1:
            raise ValueError("max_field_bytes must be at least 1")
        if not 0.0 <= self.max_rejected_share <= 1.0:
            raise ValueError("max_rejected_share must be between 0 and 1")


def encoding_problem(name: str) -> str | None:
    """Why ``name`` cannot decode an extract, or None when it can.

    Python also knows codecs that are not text encodings (rot13, base64, hex,
    zlib_codec): they pass a lookup but fail on the first decode, so they are refused here.
    """
    try:
        codecs.lookup(name)
    except LookupError:
        return f"unknown encoding {name!r} (e.g. utf-8, cp1252, latin-1)"
    try:
        b"a".decode(name, "ignore")  # empty bytes would skip the codec check
    except LookupError:
        return f"{name!r} is not a text encoding (e.g. utf-8, cp1252, latin-1)"
    except ValueError:  # a text codec with no use for this byte: still a text encoding
        pass
    return None


class Row(NamedTuple):
    """One accepted data row: ``line`` is the physical line it starts on (header = line 1).

    A named tuple rather than a dataclass: one is built per row, so construction cost counts.
    """

    line: int
    values: dict[str, str]


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One rejected row. ``message`` names columns and rules, never field values."""

    line: int
    external_id: str
    reason_code: str
    message: str


@dataclass(slots=True)
class ExtractStats:
    """Counts for one pass over an extract; ``rows_read`` excludes the header and blank lines.

    ``rows_read`` is derived (accepted + rejected), which keeps the hot loop to one counter
    and stays right when a caller moves an accepted row to rejected after mapping.
    """

    rows_accepted: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return self.rows_accepted + self.rows_rejected

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
        }


Source = str | Path | BinaryIO
_T = TypeVar("_T")
#: ``make(line, values)`` for :meth:`ExtractReader.iter_mapped`; None means "rejected, skip".
#: ``values`` is a ``dict[str, str]``, or a ``list[str]`` when iterating ``as_list``.
RowHandler = Callable[[int, Any], _T | None]


class _NonClosing(io.RawIOBase):
    """Lets a TextIOWrapper sit on a caller's stream without closing it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:  # the caller owns the stream
        super().close()


def _detect_encoding(head: bytes, named: str | None) -> str:
    """UTF-16 and UTF-8 BOMs win (they are unambiguous); otherwise the named encoding or UTF-8."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if named is None:
        return "utf-8-sig"
    norm = codecs.lookup(named).name
    return "utf-8-sig" if norm == "utf-8" else named


def _sniff(header_line: str) -> str:
    """The candidate delimiter occurring most often outside quotes; ',' on a tie or none."""
    counts = dict.fromkeys(SNIFFED_DELIMITERS, 0)
    quoted = False
    for ch in header_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(SNIFFED_DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0 or sum(1 for d in counts if counts[d] == counts[best]) > 1:
        return ","
    return best


def _clean_header_name(name: str) -> str:
    name = name.strip().lstrip("\ufeff").strip()
    for q in ('"', "'"):
        if len(name) >= 2 and name[0] == q and name[-1] == q:
            name = name[1:-1].strip()
    return name


def _locate_decode_error(opener: Callable[[], BinaryIO], encoding: str) -> tuple[int, str]:
    """Slow path, only after a decode failure: the line number and the offending bytes."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    newlines = 0
    with opener() as raw:
        while True:
            chunk = raw.read(64 * 1024)
            try:
                newlines += decoder.decode(chunk, final=not chunk).count("\n")
            except UnicodeDecodeError as exc:
                good = exc.object[: exc.start]
                newlines += good.decode(encoding, errors="ignore").count("\n")
                return newlines + 1, exc.object[exc.start : exc.end].hex(" ")
            if not chunk:
                return newlines + 1, ""


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
        _ensure_field_limit(self.profile.max_field_bytes)
        self.id_column = id_column if id_column is not None else self.profile.id_column
        self.check_rejected_share = check_rejected_share
        self.rejected: list[RejectedRow] = []
        self.stats = ExtractStats()
        self._keep_rejected: int | None = None
        self._spool: BinaryIO | None = None
        self._iterated = False
        self._opener, self.label = self._make_opener(source, label)
        with self._opener() as raw:
            head = raw.read(4)
        self.encoding = _detect_encoding(head, self.profile.encoding)
        self.header, self.delimiter = self._read_header()
        if self.id_column is not None and self.id_column not in self.header:
            raise ExtractError(
                f"id column {self.id_column!r} is not among the {len(self.header)} columns of"
                " the header" + header_hint(self.header, self.id_column),
                path=self.label,
                line=1,
            )

    # -- opening ---------------------------------------------------------------------------

    def _make_opener(self, source: Source, label: str | None) -> tuple[Callable[[], BinaryIO], str]:
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                raise ExtractError("file not found", path=label or str(path))

            def open_path() -> BinaryIO:
                return path.open("rb")

            return open_path, label or str(path)
        stream = source
        if not stream.seekable():
            spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
            shutil.copyfileobj(stream, spool)
            spool.seek(0)
            self._spool = spool  # type: ignore[assignment]
            stream = spool  # type: ignore[assignment]
        start = stream.tell()

        def open_stream() -> BinaryIO:
            stream.seek(start)
            return io.BufferedReader(_NonClosing(stream))

        name = getattr(source, "name", None)
        return open_stream, label or (name if isinstance(name, str) and name else "<stream>")

    def close(self) -> None:
        """Release the temporary copy of a non-seekable stream, if one was made."""
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def __enter__(self) -> ExtractReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _text(self, raw: BinaryIO) -> io.TextIOWrapper:
        return io.TextIOWrapper(raw, encoding=self.encoding, errors="strict", newline="")

    def _decode_error(self, exc: UnicodeError) -> ExtractError:
        shown = self.encoding.removesuffix("-sig")
        if not isinstance(exc, UnicodeDecodeError):
            # The codec refuses the stream as a whole (utf-16/utf-32 without a byte order
            # mark): no offending bytes to point at.
            return ExtractError(
                f"cannot decode as {shown}: {exc}; for a file without a byte order mark name"
                " the byte order in the mapping's extract.encoding (e.g. utf-16-le)",
                path=self.label,
                line=1,
            )
        line, bad = _locate_decode_error(self._opener, self.encoding)
        hint = (
            "name the file's encoding in the mapping's extract.encoding (e.g. cp1252)"
            if self.profile.encoding is None
            else "check extract.encoding in the mapping"
        )
        detail = f" (bytes {bad})" if bad else ""
        return ExtractError(f"cannot decode as {shown}{detail}; {hint}", path=self.label, line=line)

    def _rows(self, text: io.TextIOWrapper) -> tuple[_csv.Reader, list[str], str]:
        """A csv reader positioned after the header, the raw header fields, the delimiter."""
        first = text.readline()
        if not first.strip():
            raise ExtractError("the file is empty or its first line is blank", path=self.label)
        delimiter = self.profile.delimiter or _sniff(first)
        reader = csv.reader(itertools.chain((first,), text), delimiter=delimiter)
        try:
            raw_header = next(reader)
        except csv.Error as exc:
            raise ExtractError(f"header cannot be parsed: {exc}", path=self.label, line=1) from None
        return reader, raw_header, delimiter

    def _read_header(self) -> tuple[list[str], str]:
        with self._opener() as raw:
            text = self._text(raw)
            try:
                _, raw_header, delimiter = self._rows(text)
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        header = [_clean_header_name(h) for h in raw_header]
        problems: list[str] = []
        empty = [str(i + 1) for i, h in enumerate(header) if not h]
        if empty:
            problems.append("empty column name at position " + ", ".join(empty))
        problems += duplicate_positions(header)
        if problems:
            raise ExtractError(
                "bad header: " + "; ".join(problems) + header_hint(header),
                path=self.label,
                line=1,
            )
        return header, delimiter

    # -- passes ----------------------------------------------------------------------------

    def _duplicate_hashes(self) -> tuple[set[int], int, int]:
        """First pass over the id column: hashes of ids seen more than once, and of ids
        holding an unprintable character (the data pass rejects both by hash, at no cost
        to clean rows).

        Also returns how many data rows there are and how many of them the id pass
        already knows will be rejected (for the early share check). Uses Python's
        per-process string hash: 64-bit, so a false duplicate among a million ids has a
        probability of about 3e-8, and it differs from run to run, so it cannot stick.
        """
        assert self.id_column is not None
        idx = self.header.index(self.id_column)
        ncols = len(self.header)
        buckets = _buckets()
        mask = _BUCKETS - 1
        rows = 0
        known_bad = 0
        unclean: set[int] = set()  # ids holding an unprintable character: rejected as well
        delim = self.delimiter
        with self._opener() as raw:
            text = self._text(raw)
            try:
                reader, _, _ = self._rows(text)
                lineno = reader.line_num  # physical lines read so far (the header's)
                # Fast path while lines hold no quote: for such lines the csv module splits
                # exactly on the delimiter, so the id is one str.split away. A block of lines
                # that all have the header's field count is handled by C-level map() calls;
                # other blocks line by line. From the first quote on, the csv reader takes
                # over for the rest of the file.
                pending: list[str] | None = None
                want = ncols - 1
                while pending is None:
                    lines = text.readlines(_BLOCK_CHARS)
                    if not lines:
                        break
                    if (
                        want
                        and '"' not in "".join(lines)
                        and list(map(str.count, lines, repeat(delim))).count(want) == len(lines)
                    ):
                        if idx == 0:
                            fields = map(_first, map(str.partition, lines, repeat(delim)))
                        else:
                            split = map(str.split, lines, repeat(delim), repeat(idx + 1))
                            fields = map(itemgetter(idx), split)
                        ids = list(map(str.strip, fields))
                        rows += len(ids)
                        known_bad += ids.count("")
                        if not "".join(ids).isprintable():  # one call per block
                            unclean.update(hash(i) for i in ids if not i.isprintable())
                            known_bad += sum(not i.isprintable() for i in ids)
                        for h in map(hash, filter(None, ids)):
                            buckets[h & mask].append(h)
                        lineno += len(lines)
                        continue
                    for i, line in enumerate(lines):
                        if '"' in line:
                            pending = lines[i:]
                            lineno += i
                            break
                        if line.count(delim) != want:
                            if line.strip():
                                rows += 1
                                known_bad += 1
                            continue
                        rows += 1
                        ext = line.split(delim, idx + 1)[idx].strip()
                        if not ext:
                            if ncols == 1 and not line.strip():
                                rows -= 1  # a blank line in a one-column file
                            else:
                                known_bad += 1
                            continue
                        if not ext.isprintable():
                            unclean.add(hash(ext))
                            known_bad += 1
                            continue
                        h = hash(ext)
                        buckets[h & mask].append(h)
                    else:
                        lineno += len(lines)
                if pending is not None:
                    reader = csv.reader(
                        itertools.chain(pending, text), delimiter=delim, strict=True
                    )
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
                                    raise self._runaway_quote(first, lineno, len(row))
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
                        self._check_csv_error(exc, first, lineno)
                        rows += 1
                        known_bad += 1
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        dups, repeated = _repeats(buckets, unclean)
        return dups | unclean, rows, known_bad + repeated

    def _runaway_quote(self, first: int, last: int, detail: str | int) -> ExtractError:
        """The file-level error for a quoted value that swallowed lines (see the module doc)."""
        if isinstance(detail, int):
            detail = f"the row it opens has {detail} fields, the header has {len(self.header)}"
        return ExtractError(
            f"unterminated quote starting at line {first} (lines {first}\u2013{last}): {detail}."
            " The rows after it cannot be trusted (a full sync would take the people on those"
            " lines for leavers), so the file is not applied. Close the quote, or double a"
            " quote inside a quoted value, and send the file again",
            path=self.label,
            line=first,
        )

    def _check_csv_error(self, exc: csv.Error, first: int, last: int) -> None:
        """Raise the file-level error when a parse error ends a value running over lines.

        The csv reader is strict, so a quote that is never closed fails at the end of the
        file, and one closed by a later quote usually fails where text follows that quote.
        A parse error confined to one line is a malformed row, rejected by the caller.
        """
        message = str(exc)
        if "unexpected end of data" in message:
            raise self._runaway_quote(first, last, "the file ends inside the quoted value")
        if last > first:
            if "expected after" in message:
                detail = f"a quote on line {last} closes it and text follows that quote"
            elif _FIELD_LIMIT_MESSAGE in message:
                detail = f"the quoted value grew over {csv.field_size_limit()} characters"
            else:
                detail = f"the row cannot be parsed ({message})"
            raise self._runaway_quote(first, last, detail)

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
        if external_id and (
            len(external_id) > _MAX_ID_SHOWN
            or "\n" in external_id
            or "\r" in external_id
            or self.delimiter in external_id
        ):
            external_id = ""  # not an id but a run of fields: it may hold personal data
        elif not external_id.isprintable():
            external_id = shown_id(external_id)
        keep = self._keep_rejected
        if keep is None or len(self.rejected) < keep:
            self.rejected.append(RejectedRow(line, external_id, reason, message))
        by = self.stats.rejected_by_reason
        by[reason] = by.get(reason, 0) + 1

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
        self._keep_rejected = MAX_REJECTED_IN_ERROR
        for _ in self._data_pass(None, None, dups):
            pass  # rows_accepted then counts rows that passed the checks, though none is used
        return self.share_error(self.stats.rows_rejected, self.stats.rows_read)

    def _reject_shape(self, line: int, row: list[str], idx: int) -> None:
        """A row with the wrong number of fields (blank lines are skipped, not rejected)."""
        if not row or (len(row) == 1 and not row[0].strip()):
            return
        ext = row[idx].strip() if 0 <= idx < len(row) else ""
        self.add_rejected(
            line,
            ext,
            RejectReason.FIELD_COUNT,
            f"{len(row)} fields, the header has {len(self.header)}",
        )

    def _reject_id(self, line: int, ext: str) -> None:
        if ext and not ext.isprintable():
            self.add_rejected(
                line,
                ext,
                RejectReason.CONTROL_CHARACTER,
                f"{self.id_column} holds an unprintable character ({describe_unprintable(ext)}),"
                " so it is not the id it looks like; fix the extract",
            )
        elif not ext:
            self.add_rejected(
                line, "", RejectReason.EMPTY_EXTERNAL_ID, f"{self.id_column} is empty"
            )
        else:
            self.add_rejected(
                line,
                ext,
                RejectReason.DUPLICATE_EXTERNAL_ID,
                f"{self.id_column} occurs on more than one row; every such row is rejected",
            )

    def _has_control(self, line: int, row: list[str], idx: int) -> bool:
        """Reject the row if a value holds a C0 control other than tab, LF and CR, or DEL
        (:data:`connector.extract_controls.FORBIDDEN`), naming the columns, never the value."""
        bad = control_columns(self.header, row)
        if not bad:
            return False
        self.add_rejected(
            line,
            row[idx].strip() if idx >= 0 else "",
            RejectReason.CONTROL_CHARACTER,
            f"{', '.join(bad)}: a control character; fix the extract",
        )
        return True

    def _too_large(self, line: int, row: list[str], idx: int) -> bool:
        """Reject the row if a field is over the byte cap (only called for long fields)."""
        cap = self.profile.max_field_bytes
        quick_cap = cap // 4
        big = [
            self.header[i]
            for i, v in enumerate(row)
            if len(v) > quick_cap and len(v.encode("utf-8")) > cap
        ]
        if not big:
            return False
        ext = row[idx].strip() if idx >= 0 else ""
        self.add_rejected(
            line,
            ext,
            RejectReason.FIELD_TOO_LARGE,
            f"{', '.join(big)} over {cap} bytes",
        )
        return True

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
        every row, then the share check.

        Blocks of lines without a quote and without a line longer than a quarter of the
        byte cap are split with ``str.split`` (exactly what the csv module does with such
        lines, at a fraction of the cost) and need no size check: no field is longer than
        its line. From the first other block on, the csv reader parses the rest of the file
        and every row's fields are measured.
        """
        seen: list[array[int]] | None = None  # id hashes counted in this pass
        if dups is None:
            dups = set()
            if self.id_column is not None and ids_in_pass:
                seen = _buckets()
            elif self.id_column is not None:
                dups, rows, known_bad = self._duplicate_hashes()
                if self._over_cap(known_bad, rows):  # proven before any row is handed out
                    raise self._refuse_early(dups)
        header = self.header
        ncols = len(header)
        idx = header.index(self.id_column) if self.id_column is not None else -1
        id_name = self.id_column or ""
        quick_cap = self.profile.max_field_bytes // 4  # n chars are at most 4n UTF-8 bytes
        stats = self.stats
        strip = str.strip
        delim = self.delimiter
        names = self.selected_columns(columns)
        pick: Callable[[list[str]], tuple[str, ...]] | None = None
        if len(names) < ncols:
            pick = itemgetter(*(header.index(n) for n in names))
        id_key: str | int = id_name
        if as_list and idx >= 0:
            id_key = names.index(id_name)
        with self._opener() as raw:
            text = self._text(raw)
            nul = NulWatch()  # set once a block of lines holds a NUL
            try:
                header_reader, _, _ = self._rows(text)
                lineno = header_reader.line_num  # physical lines of the header
                pending: list[str] | None = None
                while True:
                    lines = text.readlines(_BLOCK_CHARS)
                    if not lines:
                        break
                    split = _split_block(lines, ncols, quick_cap, delim, nul)
                    if split is None:
                        pending = lines
                        break
                    for row in split:
                        lineno += 1
                        if len(row) != ncols:
                            self._reject_shape(lineno, row, idx)
                            continue
                        fields = pick(row) if pick else row
                        values: Any = (
                            list(map(strip, fields))
                            if as_list
                            else dict(zip(names, map(strip, fields)))  # noqa: B905 - same length
                        )
                        if idx >= 0:
                            ext = values[id_key]
                            if seen is not None:
                                if not ext or not ext.isprintable():
                                    self._reject_id(lineno, ext)
                                    continue
                                h = hash(ext)
                                seen[h & _MASK].append(h)
                            elif not ext or (dups and hash(ext) in dups):
                                self._reject_id(lineno, ext)
                                continue
                        if make is None:
                            stats.rows_accepted += 1
                            yield Row(lineno, values)  # type: ignore[misc]
                        else:
                            out = make(lineno, values)
                            if out is not None:
                                stats.rows_accepted += 1
                                yield out
                if pending is not None:
                    reader = csv.reader(
                        itertools.chain.from_iterable(nul.blocks(pending, text, _BLOCK_CHARS)),
                        delimiter=delim,
                        strict=True,
                    )
                    base = lineno
                    while True:
                        try:
                            for row in reader:
                                line = lineno + 1
                                lineno = base + reader.line_num
                                if len(row) != ncols:
                                    if lineno > line and not (len(row) == 1 and not row[0].strip()):
                                        raise self._runaway_quote(line, lineno, len(row))
                                    self._reject_shape(line, row, idx)
                                    continue
                                if seen is not None:
                                    _count_id(seen, row[idx].strip())
                                if max(map(len, row)) > quick_cap and self._too_large(
                                    line, row, idx
                                ):
                                    continue
                                if nul.found and self._has_control(line, row, idx):
                                    continue
                                fields = pick(row) if pick else row
                                values = (
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
                                        self._reject_id(line, ext)
                                        continue
                                if make is None:
                                    stats.rows_accepted += 1
                                    yield Row(line, values)  # type: ignore[misc]
                                else:
                                    out = make(line, values)
                                    if out is not None:
                                        stats.rows_accepted += 1
                                        yield out
                            break
                        except csv.Error as exc:
                            line = lineno + 1
                            lineno = base + reader.line_num
                            self._check_csv_error(exc, line, lineno)
                            if _FIELD_LIMIT_MESSAGE in str(exc):
                                self.add_rejected(
                                    line,
                                    "",
                                    RejectReason.FIELD_TOO_LARGE,
                                    f"a field is over {csv.field_size_limit()} characters, so"
                                    f" over {self.profile.max_field_bytes} bytes",
                                )
                            else:
                                self.add_rejected(
                                    line, "", RejectReason.MALFORMED_ROW, f"cannot be parsed: {exc}"
                                )
            except UnicodeError as exc:
                raise self._decode_error(exc) from None
            finally:
                text.detach()
        if seen is not None:
            repeated, _ = _repeats(seen, ())
            if repeated:
                raise ReadAgainError(
                    f"{self.id_column} repeats on some rows; read the file again to reject them",
                    path=self.label,
                    duplicates=repeated,
                )
        if share is not None:
            rows, bad = stats.rows_read, stats.rows_rejected
            if rows and bad / rows > share:
                raise self.share_error(bad, rows)


_BLOCK_CHARS: Final = 64 * 1024
_first: Final = itemgetter(0)


_MASK: Final = _BUCKETS - 1


def _count_id(seen: list[array[int]], ext: str) -> None:
    """Count a non-empty, printable id (others are rejected as such, never as repeats)."""
    if ext and ext.isprintable():
        h = hash(ext)
        seen[h & _MASK].append(h)


def _split_block(
    lines: list[str], ncols: int, quick_cap: int, delim: str, nul: NulWatch
) -> Iterable[list[str]] | None:
    """A block's rows when ``str.split`` parses them exactly as the csv module would, else
    None (the csv reader then parses the rest of the file, measuring every field).

    Each line must be one row, and no value may need a look of its own: no line longer
    than a quarter of the byte cap, no NUL in the block (:class:`NulWatch`). Lines without
    any quote are split on the delimiter (the line ending stays on the last field, which
    the caller strips). A block whose every field is quoted with no quote inside
    (``"a","b"``, as spreadsheets and many HR systems write) is split on
    quote-delimiter-quote (:func:`_quoted_rows`).
    """
    if ncols == 1 or max(map(len, lines)) > quick_cap:  # 1: a blank line is one empty field
        return None
    if not nul.needs_csv("".join(lines)):
        return map(str.split, lines, repeat(delim))
    if nul.found:
        return None
    return _quoted_rows(lines, ncols, delim)


def _quoted_rows(lines: list[str], ncols: int, delim: str) -> list[list[str]] | None:
    """``"v1","v2",...`` lines as rows, or None when any line is not exactly that.

    A line qualifies when it holds ``2 * ncols`` quotes, starts and ends (before its line
    ending) with one, and splits on quote-delimiter-quote into ``ncols`` parts: the
    separators and the two ends then use every quote, so no value holds one, and the csv
    module would read the same values. Anything else (a doubled quote, an unquoted or
    multi-line value, a stray space) leaves the block to the csv reader.
    """
    want = 2 * ncols
    if list(map(str.count, lines, repeat('"'))).count(want) != len(lines):
        return None
    sep = f'"{delim}"'
    rows = []
    for line in lines:
        body = line.rstrip("\r\n")
        if body[:1] != '"' or body[-1:] != '"' or len(body) < 2:
            return None
        row = body[1:-1].split(sep)
        if len(row) != ncols:
            return None
        rows.append(row)
    return rows


def _buckets() -> list[array[int]]:
    """Empty buckets for 8-byte id hashes (by their low bits, so each is small to count)."""
    return [array("q") for _ in range(_BUCKETS)]


def _repeats(buckets: list[array[int]], unclean: Collection[int]) -> tuple[set[int], int]:
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


#: rejected rows show an id only when it looks like one: at most this long, no newline or
#: delimiter (anything else is a run of fields that may hold names and emails)
_MAX_ID_SHOWN: Final = 256
#: the csv module's process-wide field limit is raised to at least this many characters, so
#: a long field reaches the byte-cap check (rejected with its id) instead of a parse error
_FIELD_LIMIT_FLOOR: Final = 4 * 1024 * 1024
_FIELD_LIMIT_MESSAGE: Final = "field larger than field limit"


def _ensure_field_limit(max_field_bytes: int) -> None:
    """Raise (never lower) the csv module's field limit above the byte cap and the floor.

    The limit is process-wide; raising it only lets longer fields through to our own
    size check. It still bounds memory when a quote is never closed.
    """
    want = max(_FIELD_LIMIT_FLOOR, max_field_bytes + 1)
    if csv.field_size_limit() < want:
        csv.field_size_limit(want)


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


def with_id_column(profile: ExtractProfile, id_column: str) -> ExtractProfile:
    """The same profile with ``id_column`` set (kept out of ``__all__``: a small helper)."""
    return replace(profile, id_column=id_column)
