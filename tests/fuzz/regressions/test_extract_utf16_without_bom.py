"""Found by fuzzing the extract reader: a mapping naming ``extract.encoding: utf-16`` and
a file without a byte order mark end in a bare ``UnicodeError`` ("UTF-16 stream does not
start with BOM") instead of an ExtractError naming the file and the encoding.
Owner: connector/extract.py (input hardening). Remove the entry in
tests/fuzz/targets.py KNOWN_DEFECTS with this xfail when fixed."""

from __future__ import annotations

import pytest

from tests.fuzz.targets import holds

INPUT = b"\x03" + b"EmployeeId,Name\n1,a\n"  # option byte 3: encoding utf-16, no BOM


@pytest.mark.xfail(
    strict=True,
    raises=UnicodeError,
    reason="extract.py: named utf-16 without a BOM raises UnicodeError, not ExtractError",
)
def test_named_utf16_without_a_bom_is_an_extract_error() -> None:
    holds("extract", INPUT, known=())
