"""The psd1 reader: the data-file subset parsed into values with lines; every bad file is
one error naming the file and line, and nothing is ever run."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import Psd1Error
from connector.migrate.psd1 import (
    MAX_BYTES,
    Array,
    Expandable,
    Hashtable,
    Literal,
    ScriptBlock,
    decode_psd1,
    parse_psd1,
    read_psd1,
)
from connector.migrate.tokens import MAX_DEPTH
from tests.migrate.helpers import SAMPLE_PSD1


def test_the_sample_shape_parses_into_hashtables_arrays_and_scriptblocks() -> None:
    table, _ = read_psd1(SAMPLE_PSD1)
    entries = {e.key: e for e in table.entries}
    assert entries["externalId"].value == Literal("WorkerID", 6)
    assert isinstance(entries["name"].value, Hashtable)
    active = entries["active"].value
    assert isinstance(active, ScriptBlock)
    assert active.source == "{ $_.'WorkerStatus' -eq 'Active' }"
    assert (entries["active"].line, active.line) == (11, 11)
    addresses = entries["addresses"].value
    assert isinstance(addresses, Array)
    assert len(addresses.items) == 1
    urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    manager = {e.key: e for e in entries[urn].value.entries}["manager"]  # type: ignore[union-attr]
    assert isinstance(manager.value, Hashtable)
    assert manager.value.entries[0].value == Literal("ManagerID", 38)


def test_values_of_every_literal_kind() -> None:
    table = parse_psd1(
        "@{ a = 1; b = -2.5; c = 0x10; d = $TRUE; e = $false; f = $null; g = 'x', \"y\"\n"
        '  h = @( 1\n 2; 3 ); i = @(); j = ("p"); k = "$x" }'
    )
    got = {e.key: e.value for e in table.entries}
    assert [got[k] for k in "abcdef"] == [
        Literal(1, 1),
        Literal(-2.5, 1),
        Literal(16, 1),
        Literal(True, 1),
        Literal(False, 1),
        Literal(None, 1),
    ]
    assert got["g"] == Array((Literal("x", 1), Literal("y", 1)), 1)
    assert got["h"] == Array((Literal(1, 2), Literal(2, 3), Literal(3, 3)), 2)
    assert got["i"] == Array((), 3)
    assert got["j"] == Literal("p", 3)
    assert isinstance(got["k"], Expandable)


def test_scriptblocks_keep_nested_braces_and_strings_with_braces() -> None:
    table = parse_psd1("@{ a = { if ($x) { '}' } else { @{ b = 1 } } } }")
    block = table.entries[0].value
    assert isinstance(block, ScriptBlock)
    assert block.source == "{ if ($x) { '}' } else { @{ b = 1 } } }"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("'WorkerID'", 1, "not a PowerShell data file: expected @{"),
        ("\n\n@( 'a' )", 3, "not a PowerShell data file"),
        ("", 1, "found the end of the file"),
        ("@{\n a = 'x'\n", 3, "the @{ opened on line 1 is never closed"),
        ("@{\n a = @(\n 'x'\n}", 4, "the @( opened on line 2 is never closed"),
        ("@{\n a = @(\n 'x' 'y' )}", 3, "expected a new line, ; or ) in the @( of line 2"),
        ("@{\n a = { $_.X \n}", 3, "the @{ opened on line 1 is never closed"),
        ("@{\n a = { $_.X \n", 3, "the { opened on line 2 is never closed"),
        ("@{ a = 'x' }\n}", 2, "after the file's closing }"),
        ("@{\n a = 'x'\n A = 'y' }", 3, "duplicate key 'A' (also on line 2; keys ignore case)"),
        ("@{ a 'x' }", 1, "expected = after the key 'a'"),
        ("@{ a = 'x' 'y' }", 1, "expected a new line, ; or } after the value of 'a'"),
        ("@{ a = $env:PATH }", 1, "variables are not allowed in a data file ($env:PATH)"),
        ("@{ a = [string]'x' }", 1, "type casts"),
        ("@{ a = Get-Date }", 1, "expected a value"),
        ("@{ $x = 1 }", 1, "expected a key"),
        ("@{ a = ('x' }", 1, "the ( opened on line 1 is never closed"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(Psd1Error) as caught:
        parse_psd1(text, "AttributeMapping.psd1")
    message = str(caught.value)
    assert message.startswith(f"AttributeMapping.psd1:{line}: "), message
    assert words in message
    assert "\n" not in message
    assert caught.value.line == line


def test_nesting_deeper_than_the_limit_is_refused_not_a_recursion_error() -> None:
    deep = "@{ a = " + "@(" * (MAX_DEPTH + 5) + ")" * (MAX_DEPTH + 5) + " }"
    with pytest.raises(Psd1Error, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse_psd1(deep)
    braces = "@{ a = " + "{" * 10_000 + "}" * 10_000 + " }"
    with pytest.raises(Psd1Error, match="nested more than"):
        parse_psd1(braces)
    strings = "@{ a = " + '"$(' * 5000 + " }"
    with pytest.raises(Psd1Error, match="nested more than"):
        parse_psd1(strings)


def test_an_enormous_file_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.psd1"
    big.write_bytes(b"@{ a = '" + b"x" * MAX_BYTES + b"' }")
    with pytest.raises(Psd1Error, match=r"big\.psd1: .*over the 1024 KiB limit"):
        read_psd1(big)


def test_byte_order_marks_decide_the_encoding() -> None:
    text = "@{ a = 'Ł' }"
    for data in (
        b"\xef\xbb\xbf" + text.encode(),
        b"\xff\xfe" + text.encode("utf-16-le"),
        b"\xfe\xff" + text.encode("utf-16-be"),
    ):
        assert parse_psd1(decode_psd1(data, "m.psd1")).entries[0].value == Literal("Ł", 1)


def test_text_that_is_not_utf8_names_the_line_and_the_way_out() -> None:
    data = "@{\n a = 'Müller'\n}".encode("cp1252")
    with pytest.raises(Psd1Error, match=r"^m\.psd1:2: not UTF-8 text; .*--encoding"):
        decode_psd1(data, "m.psd1")
    assert "Müller" in decode_psd1(data, "m.psd1", "cp1252")
    with pytest.raises(Psd1Error, match="unknown encoding 'nope'"):
        decode_psd1(data, "m.psd1", "nope")


def test_a_missing_file_is_a_psd1_error(tmp_path: Path) -> None:
    with pytest.raises(Psd1Error, match=r"missing\.psd1: cannot be read"):
        read_psd1(tmp_path / "missing.psd1")
