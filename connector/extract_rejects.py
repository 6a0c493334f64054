"""Rejected rows of one pass over an extract: each rejection recorded and counted, with
a message that names columns and rules, never a field value.

Rejection messages never quote field values, so they can be logged without personal
data, and a rejected row shows its id only when it looks like one (at most 256
characters, no newline or delimiter).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import Final

from connector.extract_controls import control_columns, describe_unprintable, shown_id
from connector.extract_csv import FIELD_LIMIT_MESSAGE
from connector.extract_rows import ExtractStats, RejectedRow, RejectReason

__all__ = ["Rejections"]

#: rejected rows show an id only when it looks like one: at most this long, no newline or
#: delimiter (anything else is a run of fields that may hold names and emails)
_MAX_ID_SHOWN: Final = 256


class Rejections:
    """The rejected rows of a pass and its counts.

    Every rejection is counted in :attr:`stats`; :attr:`rejected` lists at most
    :attr:`keep` of them when that limit is set (None: all). ``idx`` arguments are the
    id column's position in a row (-1: no id column).
    """

    __slots__ = ("delimiter", "header", "id_column", "keep", "rejected", "stats")

    def __init__(self, header: Sequence[str], id_column: str | None, delimiter: str) -> None:
        self.header = header
        self.id_column = id_column
        self.delimiter = delimiter
        self.rejected: list[RejectedRow] = []
        self.stats = ExtractStats()
        self.keep: int | None = None

    def add(self, line: int, external_id: str, reason: str, message: str) -> None:
        """Record a rejected row (an id that does not look like one is left out)."""
        if external_id and (
            len(external_id) > _MAX_ID_SHOWN
            or "\n" in external_id
            or "\r" in external_id
            or self.delimiter in external_id
        ):
            external_id = ""  # not an id but a run of fields: it may hold personal data
        elif not external_id.isprintable():
            external_id = shown_id(external_id)
        keep = self.keep
        if keep is None or len(self.rejected) < keep:
            self.rejected.append(RejectedRow(line, external_id, reason, message))
        by = self.stats.rejected_by_reason
        by[reason] = by.get(reason, 0) + 1

    def shape(self, line: int, row: list[str], idx: int) -> None:
        """A row with the wrong number of fields (blank lines are skipped, not rejected)."""
        if not row or (len(row) == 1 and not row[0].strip()):
            return
        ext = row[idx].strip() if 0 <= idx < len(row) else ""
        self.add(
            line,
            ext,
            RejectReason.FIELD_COUNT,
            f"{len(row)} fields, the header has {len(self.header)}",
        )

    def bad_id(self, line: int, ext: str) -> None:
        """A row whose id is unprintable, empty or (otherwise) repeated."""
        if ext and not ext.isprintable():
            self.add(
                line,
                ext,
                RejectReason.CONTROL_CHARACTER,
                f"{self.id_column} holds an unprintable character ({describe_unprintable(ext)}),"
                " so it is not the id it looks like; fix the extract",
            )
        elif not ext:
            self.add(line, "", RejectReason.EMPTY_EXTERNAL_ID, f"{self.id_column} is empty")
        else:
            self.add(
                line,
                ext,
                RejectReason.DUPLICATE_EXTERNAL_ID,
                f"{self.id_column} occurs on more than one row; every such row is rejected",
            )

    def control(self, line: int, row: list[str], idx: int) -> bool:
        """Reject the row if a value holds a C0 control other than tab, LF and CR, or DEL
        (:data:`connector.extract_controls.FORBIDDEN`), naming the columns, never the value."""
        bad = control_columns(self.header, row)
        if not bad:
            return False
        self.add(
            line,
            row[idx].strip() if idx >= 0 else "",
            RejectReason.CONTROL_CHARACTER,
            f"{', '.join(bad)}: a control character; fix the extract",
        )
        return True

    def too_large(self, line: int, row: list[str], idx: int, cap: int) -> bool:
        """Reject the row if a field is over ``cap`` bytes (only called for long fields)."""
        quick_cap = cap // 4
        big = [
            self.header[i]
            for i, v in enumerate(row)
            if len(v) > quick_cap and len(v.encode("utf-8")) > cap
        ]
        if not big:
            return False
        ext = row[idx].strip() if idx >= 0 else ""
        self.add(line, ext, RejectReason.FIELD_TOO_LARGE, f"{', '.join(big)} over {cap} bytes")
        return True

    def unparsed(self, exc: csv.Error, line: int, cap: int) -> None:
        """A row confined to one line that the csv module cannot parse (``cap``: the byte cap)."""
        if FIELD_LIMIT_MESSAGE in str(exc):
            self.add(
                line,
                "",
                RejectReason.FIELD_TOO_LARGE,
                f"a field is over {csv.field_size_limit()} characters, so over {cap} bytes",
            )
        else:
            self.add(line, "", RejectReason.MALFORMED_ROW, f"cannot be parsed: {exc}")
