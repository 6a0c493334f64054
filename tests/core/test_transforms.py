"""The fixed transform set: arguments checked at load, values checked per row."""

from __future__ import annotations

import pytest

from connector.errors import TransformError
from connector.transforms import TRANSFORM_NAMES, make_transform, strip_diacritics

PARIS = {"formats": ["%d/%m/%Y"], "timezone": "Europe/Paris"}
WITH_ZONE = {"formats": ["%Y-%m-%dT%H:%M:%S%z"]}


def run(name: str, arg: object, value: object) -> object:
    return make_transform(name, arg).fn(value)


def test_names_are_the_fixed_set() -> None:
    assert set(TRANSFORM_NAMES) == {
        "trim", "lower", "upper", "title", "strip_diacritics", "lookup", "equals", "date",
        "split", "join", "replace", "truncate", "default",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("trim", "  a b ", "a b"),
        ("lower", "ÉLODIE", "élodie"),
        ("upper", "straße", "STRASSE"),
        ("title", "jean-luc o'brien", "Jean-Luc O'Brien"),
        ("strip_diacritics", "Łukasz Dąbrowski-Øvergård", "Lukasz Dabrowski-Overgard"),
        ("strip_diacritics", "Weiß Þór", "Weiss Thor"),
        ("strip_diacritics", "plain", "plain"),
    ],
)
def test_text_transforms(name: str, value: str, expected: str) -> None:
    assert run(name, None, value) == expected


def test_strip_diacritics_output_is_ascii_for_sample_names() -> None:
    from connector.sample import FIRST_NAMES, LAST_NAMES

    for n in (*FIRST_NAMES, *LAST_NAMES):
        assert strip_diacritics(n).isascii(), n


def test_no_arg_transform_refuses_an_argument() -> None:
    with pytest.raises(ValueError, match="takes no argument"):
        make_transform("lower", "x")


def test_unknown_transform_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown transform 'eval'.*strip_diacritics"):
        make_transform("eval", "__import__('os')")


def test_lookup_forms() -> None:
    t = make_transform("lookup", {"Active": True, "Inactive": False})
    assert t.produces_bool
    assert t.fn("Active") is True
    assert t.fn("Inactive") is False
    with pytest.raises(TransformError) as info:
        t.fn("Retired")
    assert info.value.reason_code == "invalid_value"
    assert "Retired" not in str(info.value)
    table = {"table": {"fr": "French"}, "default": "Other", "ignore_case": True}
    s = make_transform("lookup", table)
    assert s.fn("FR") == "French"
    assert s.fn("de") == "Other"
    assert not s.produces_bool


@pytest.mark.parametrize(
    ("arg", "fragment"),
    [
        ({}, "non-empty table"),
        ([], "non-empty table"),
        ("x", "non-empty table"),
        ({"table": {"a": 1}, "bogus": 1}, "unknown keys: bogus"),
        ({"a": [1]}, "lookup value for 'a'"),
    ],
)
def test_lookup_bad_arguments(arg: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_transform("lookup", arg)


def test_equals() -> None:
    assert run("equals", "Active", "Active") is True
    assert run("equals", "Active", "active") is False
    assert run("equals", ["Active", "On leave"], "On leave") is True
    assert run("equals", True, True) is True


@pytest.mark.parametrize(
    ("arg", "value", "expected"),
    [
        (None, "2021-05-01", "2021-05-01T00:00:00+00:00"),
        ({"timezone": "-05:00"}, "2021-05-01", "2021-05-01T00:00:00-05:00"),
        (PARIS, "01/07/2021", "2021-07-01T00:00:00+02:00"),
        (PARIS, "01/12/2021", "2021-12-01T00:00:00+01:00"),
        (WITH_ZONE, "2021-05-01T08:30:00+0200", "2021-05-01T08:30:00+02:00"),
        ({"output": "date", "formats": ["%m/%d/%Y"]}, "12/31/2020", "2020-12-31"),
        ("%Y%m%d", "20200229", "2020-02-29T00:00:00+00:00"),
    ],
)
def test_date(arg: object, value: str, expected: str) -> None:
    assert run("date", arg, value) == expected


@pytest.mark.parametrize("value", ["2021-02-30", "31/12/2020", "", "2021-5-1x"])
def test_invalid_date_is_a_row_error(value: str) -> None:
    t = make_transform("date", None)
    with pytest.raises(TransformError) as info:
        t.fn(value)
    assert info.value.reason_code == "invalid_value"
    with pytest.raises(TransformError):  # failures are not cached as successes
        t.fn(value)
    if value:
        assert t.on_text is not None
        for _ in range(2):  # the text path keeps its own memo: not cached as a success either
            with pytest.raises(TransformError, match="not a valid date"):
                t.on_text(value)
        assert t.on_text("2021-05-01") == t.on_text("2021-05-01") == "2021-05-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("arg", "fragment"),
    [
        ({"timezone": "Mars/Base"}, "unknown timezone"),
        ({"formats": []}, "list of strptime formats"),
        ({"formats": ["%Y %Q"]}, "unsupported directives"),
        ({"output": "epoch"}, "date.output"),
        ({"zone": "UTC"}, "unknown keys: zone"),
        ({"timezone": "+25:00"}, "out of range"),
        (42, "format string"),
    ],
)
def test_date_bad_arguments(arg: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_transform("date", arg)


def test_split_join_replace_truncate_default() -> None:
    assert run("split", ";", "a; b;;c") == ["a", "b", "c"]
    assert run("split", {"separator": " ", "index": -1}, "Mary Ann Smith") == "Smith"
    assert run("split", {"separator": ",", "index": 5}, "a,b") is None
    assert run("join", " ", ["a", "", "b"]) == "a b"
    assert run("join", " ", "already text") == "already text"
    assert run("replace", {"pattern": r"[^a-z0-9.]", "with": ""}, "o'brien.x y") == "obrien.xy"
    assert run("replace", {"pattern": r"(\w+)@(\w+)", "with": r"\2:\1"}, "a@b") == "b:a"
    assert run("truncate", 3, "abcdef") == "abc"
    d = make_transform("default", "n/a")
    assert d.accepts_none
    assert d.fn(None) == "n/a"
    assert d.fn("x") == "x"


@pytest.mark.parametrize(
    ("name", "arg", "fragment"),
    [
        ("split", "", "needs a separator"),
        ("split", {"separator": ",", "index": "1"}, "index must be an integer"),
        ("join", 3, "separator text"),
        ("replace", {"pattern": "("}, "not a valid regular expression"),
        ("replace", {"pattern": "a", "with": r"\9"}, "not a valid replacement"),
        ("replace", {"pattern": "a" * 600}, "longer than"),
        ("truncate", 0, "positive number"),
        ("truncate", True, "positive number"),
        ("default", [1], "text, number or boolean"),
        ("equals", [], "needs a value"),
    ],
)
def test_bad_arguments(name: str, arg: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_transform(name, arg)


def test_text_transform_on_a_boolean_is_a_row_error() -> None:
    with pytest.raises(TransformError, match="needs text"):
        run("lower", None, True)
