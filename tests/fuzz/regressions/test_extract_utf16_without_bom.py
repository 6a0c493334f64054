"""Found by fuzzing the extract reader: a mapping naming ``extract.encoding: utf-16`` and
a file without a byte order mark ended in a bare ``UnicodeError`` ("UTF-16 stream does not
start with BOM") instead of an ExtractError naming the file and the encoding.
Now an ExtractError that names the byte order to use."""

from __future__ import annotations

import io

import pytest

from tests.fuzz.targets import holds

INPUT = b"\x03" + b"EmployeeId,Name\n1,a\n"  # option byte 3: encoding utf-16, no BOM


def test_named_utf16_without_a_bom_is_an_extract_error() -> None:
    holds("extract", INPUT, known=())


def test_the_error_names_the_byte_order_to_use() -> None:
    from connector.errors import ExtractError
    from connector.extract import ExtractProfile, read_extract

    with pytest.raises(ExtractError, match="utf-16-le"):
        list(read_extract(io.BytesIO(INPUT[1:]), ExtractProfile(encoding="utf-16")))
