"""What reading an extract hands out and counts: accepted rows, rejected rows with their
reason codes, and the counts of one pass.

Kept apart from the reader so the rejection bookkeeping, the record stream and the
reports share these types without importing the reader itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = ["ExtractStats", "RejectReason", "RejectedRow", "Row"]


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
