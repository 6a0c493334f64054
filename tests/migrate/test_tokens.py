"""Tokens of PowerShell source: quoting and escaping as PowerShell reads them, lines kept."""

from __future__ import annotations

import pytest

from connector.errors import Psd1Error
from connector.migrate.tokens import Sub, Text, Var, tokenize


def _kinds(text: str) -> list[str]:
    return [t.kind for t in tokenize(text, "m.psd1")]


def test_a_doubled_single_quote_is_one_quote_and_nothing_else_is_special() -> None:
    (tok, _) = tokenize("'it''s `n $x'", "m.psd1")
    assert (tok.kind, tok.text) == ("str", "it's `n $x")


def test_typographic_quotes_delimit_strings_as_in_powershell() -> None:
    (single, double, _) = tokenize("\u2018Worker\u2019 \u201cID\u201d", "m.psd1")
    assert (single.kind, single.text) == ("str", "Worker")
    assert (double.kind, double.text) == ("dstr", "ID")


def test_double_quoted_escapes_follow_the_backtick_rules() -> None:
    (tok, _) = tokenize('"a`tb`n""q""`$x`u{e9}"', "m.psd1")
    assert tok.text == 'a\tb\n"q"$x\u00e9'
    assert tok.parts == (Text(tok.text),)


def test_double_quoted_expansions_are_kept_as_parts_never_expanded() -> None:
    (tok, _) = tokenize('"$($_.First) $Name.x"', "m.psd1")
    sub, space, var, rest = tok.parts
    assert isinstance(sub, Sub)
    assert [t.kind for t in sub.tokens] == ["var", ".", "word"]
    assert (space, var, rest) == (Text(" "), Var("Name"), Text(".x"))


def test_comments_and_line_continuations_are_skipped_and_lines_counted() -> None:
    text = "<# block\ncomment #>\n# line comment 'x\na `\n= 'b' # tail\n"
    tokens = tokenize(text, "m.psd1")
    meaningful = [(t.kind, t.text, t.line) for t in tokens if t.kind not in ("newline", "eof")]
    assert meaningful == [("word", "a", 4), ("=", "=", 5), ("str", "b", 5)]


def test_operators_are_lower_cased_names() -> None:
    tokens = tokenize("$_.A -EQ 'x' -and -Not $true", "m.psd1")
    assert [t.text for t in tokens if t.kind == "op"] == ["-eq", "-and", "-not"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("@{\n a = 'open\n", 2, "single-quoted string is never closed"),
        ('@{\n\n a = "open', 3, "double-quoted string is never closed"),
        ("@{ <# never\nclosed", 1, "never closed with #>"),
        ('@{\n a = "$($_.A', 2, "$( is never closed"),
        ("@{ a = @'\nhere\n'@ }", 1, "here-strings"),
        ('"`u{110000}"', 1, "hex digits naming a character"),
    ],
)
def test_broken_source_is_one_error_naming_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(Psd1Error) as caught:
        tokenize(text, "m.psd1")
    assert str(caught.value).startswith(f"m.psd1:{line}: ")
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_characters_become_other_tokens_for_the_parser_to_judge() -> None:
    assert _kinds("a | b % c") == ["word", "other", "word", "other", "word", "eof"]
