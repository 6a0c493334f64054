"""How to read one source's extracts: the ``extract:`` section of a mapping file, checked
when it is built (so a bad encoding or delimiter fails at load time, not mid-file)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DEFAULT_MAX_FIELD_BYTES",
    "DEFAULT_MAX_REJECTED_SHARE",
    "SNIFFED_DELIMITERS",
    "ExtractProfile",
    "encoding_problem",
]

DEFAULT_MAX_FIELD_BYTES: Final = 4096
DEFAULT_MAX_REJECTED_SHARE: Final = 0.05
SNIFFED_DELIMITERS: Final = (",", ";", "\t", "|")


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
