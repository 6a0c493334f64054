"""Fuzzing the psd1 reader and translator: whatever the bytes, the answer is a translation
(whose YAML the mapping loader can always read) or an error from connector/errors.py;
never a crash, a RecursionError or a hang. Examples are bounded and deterministic."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.errors import ConnectorError
from connector.mapping import check_mapping
from connector.migrate import Translation, translate_psd1
from connector.migrate.psd1 import decode_psd1, parse_psd1

FRAGMENTS = [
    "@{", "}", "@(", ")", "{", "(", "$(", "[", "]", "'", '"', "\u2019", "\u201c", "`", "`n",
    "<#", "#>", "#", "\n", ";", ",", "=", ".", "+", "-", "!", "|", " ",
    "$_", "$PSItem", "$true", "$null", "$x", "${a}", "-eq", "-ne", "-ceq", "-and", "-or",
    "-not", "-like", "'a'", "'b''c'", '"d"', '"$($_.A)"', '"$_.B"', "x", "Name", "1", "0x1F",
    "2.5", "ToLower()", "Substring(0, 2)", "if", "externalId", "active", "emails", "manager",
    "value", "type", "name", "'urn:x:1.0:User'",
    "'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'",
]  # fmt: skip

FUZZ = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check(text: str) -> None:
    try:
        result = translate_psd1(text, "fuzz.psd1")
    except ConnectorError as exc:
        message = str(exc)
    else:
        assert isinstance(result, Translation)
        check_mapping(result.yaml)  # the output is always readable YAML for the loader
        return
    assert message.startswith("fuzz.psd1"), message  # names the file (and line)


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join))
def test_token_soup_gives_a_translation_or_a_connector_error(text: str) -> None:
    _check(text)


@FUZZ
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(lambda f: "@{ a = " + "".join(f)))
def test_values_after_a_key_give_a_translation_or_a_connector_error(text: str) -> None:
    _check(text)


@FUZZ
@given(st.text(max_size=200))
def test_any_text_gives_a_translation_or_a_connector_error(text: str) -> None:
    _check(text)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([None, "cp1252", "utf-16"]))
def test_any_bytes_decode_and_parse_or_raise_a_connector_error(
    data: bytes, encoding: str | None
) -> None:
    with contextlib.suppress(ConnectorError):
        parse_psd1(decode_psd1(data, "fuzz.psd1", encoding), "fuzz.psd1")


KEYS = st.sampled_from(
    ["externalId", "userName", "active", "name", "givenName", "emails", "addresses",
     "phoneNumbers", "manager", "value", "type", "primary", "department", "title", "ims",
     "'urn:x:1.0:User'", "'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'",
     "'Bad Name'", "Custom_1"]
)  # fmt: skip
EXPRESSIONS = st.lists(st.sampled_from(FRAGMENTS[27:]), min_size=1, max_size=8).map(" ".join)
LEAVES = st.one_of(
    st.sampled_from(["'WorkerID'", "'First Name'", "''", "$true", "$null", "7", '"x"']),
    EXPRESSIONS.map(lambda e: "{ " + e + " }"),
)


def _table(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    entries = st.lists(st.tuples(KEYS, children), max_size=5, unique_by=lambda kv: kv[0].lower())
    return st.one_of(
        entries.map(lambda kvs: "@{\n" + "\n".join(f"  {k} = {v}" for k, v in kvs) + "\n}"),
        st.lists(children, max_size=3).map(lambda items: "@(" + "; ".join(items) + ")"),
    )


DOCUMENTS = st.lists(
    st.tuples(KEYS, st.recursive(LEAVES, _table, max_leaves=12)),
    max_size=8,
    unique_by=lambda kv: kv[0].lower(),
).map(lambda kvs: "@{\n" + "\n".join(f"{k} = {v}" for k, v in kvs) + "\n}")


@FUZZ
@given(DOCUMENTS)
def test_well_formed_files_always_translate_to_loadable_yaml(text: str) -> None:
    result = translate_psd1(text, "fuzz.psd1")  # a well-formed data file always parses
    check_mapping(result.yaml)
    for entry in result.untranslated:
        assert f"# TODO psd1 line {entry.line}: not translated: " in result.yaml
