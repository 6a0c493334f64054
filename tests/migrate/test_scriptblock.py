"""Scriptblock expressions: PowerShell's precedence, and a clear reason for what is not
translated."""

from __future__ import annotations

import pytest

from connector.errors import UntranslatableError
from connector.migrate.scriptblock import (
    Cmp,
    Col,
    Concat,
    Expr,
    Lit,
    Logic,
    Method,
    Not,
    parse_expression,
)
from connector.migrate.tokens import tokenize


def _parse(body: str) -> Expr:
    return parse_expression(tuple(tokenize(body, "m.psd1")), "m.psd1", 1)


def test_column_reads_in_every_spelling() -> None:
    for body in ("$_.Name", "$_.'Name'", '$_."Name"', "$PSItem.Name", "return $_.Name"):
        assert _parse(body) == Col("Name"), body


def test_and_and_or_have_equal_precedence_left_to_right() -> None:
    a = Cmp("eq", Col("A"), Lit("1"), case=False)
    b = Cmp("eq", Col("B"), Lit("2"), case=False)
    c = Cmp("ne", Col("C"), Lit("3"), case=True)
    parsed = _parse("$_.A -eq '1' -or $_.B -eq '2' -and $_.C -cne '3'")
    assert parsed == Logic("and", Logic("or", a, b), c)


def test_not_binds_tighter_than_a_comparison() -> None:
    assert _parse("-not $_.A -eq 'x'") == Cmp("eq", Not(Col("A")), Lit("x"), case=False)
    assert _parse("!($_.A -eq 'x')") == Not(Cmp("eq", Col("A"), Lit("x"), case=False))


def test_concatenation_strings_and_methods() -> None:
    assert _parse("$_.A + '.' + $_.B") == Concat((Col("A"), Lit("."), Col("B")))
    assert _parse('"$($_.A) x"') == Concat((Col("A"), Lit(" x")))
    assert _parse("$_.A.Substring(0, 3)") == Method(Col("A"), "Substring", (Lit(0), Lit(3)))
    assert _parse("'work'") == Lit("work")
    assert _parse("$true") == Lit(True)


def test_an_operator_may_end_a_line() -> None:
    assert _parse("$_.A -eq 'x' -or\n  $_.A -eq 'y'") == Logic(
        "or",
        Cmp("eq", Col("A"), Lit("x"), case=False),
        Cmp("eq", Col("A"), Lit("y"), case=False),
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "the scriptblock is empty"),
        ("$_.A; $_.B", "only a single expression is translated"),
        ("$_.A | Out-String", "only a single expression is translated"),
        ("if ($_.A) { 1 }", "if statements have no equivalent"),
        ("$_.A -like 'x*'", "the -like operator has no equivalent"),
        ("$_.A -eq 'x' -eq $true", "chained comparisons"),
        ("$_", "$_ alone is the whole row"),
        ("$x.A", "the variable $x is not translated"),
        ('"$_.A"', '"$_.Name" expands $_ alone'),
        ('"$name"', "the variable $name is not translated"),
        ("$_.A.Length", "the property .Length of a value is not translated"),
        ("[string]$_.A", "type casts"),
        ("$_.A - 1", "subtraction"),
        ("($_.A", "expected ), found the end"),
        ("$_.A.Replace($_.B, 'x')", "method arguments must be literal"),
    ],
)
def test_what_is_not_translated_says_why(body: str, words: str) -> None:
    with pytest.raises(UntranslatableError) as caught:
        _parse(body)
    assert words in caught.value.detail
    assert str(caught.value).startswith("m.psd1:1: ")
