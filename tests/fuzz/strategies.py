"""Hypothesis strategies for the fuzz tests: structure-aware inputs (YAML and JSON trees
built from each format's own vocabulary, CSV soups of awkward cells) next to raw bytes,
so the examples reach past the first syntax check."""

from __future__ import annotations

from typing import Any

import orjson
import yaml
from hypothesis import strategies as st

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=100_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "x", "é", "\x00", "{", "}", "{Name}", "{a} {b}", "[", "*", "1.5"]),
)


def tree(keys: list[str], words: list[str]) -> st.SearchStrategy[Any]:
    """Nested dicts and lists whose keys come from ``keys`` and whose leaves are scalars
    or ``words`` (a format's vocabulary), a few levels deep."""
    leaves = st.one_of(SCALARS, st.sampled_from(words), st.sampled_from(keys))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(keys), st.text(max_size=4)), inner, max_size=5
            ),
        ),
        max_leaves=25,
    )


def yaml_bytes(keys: list[str], words: list[str]) -> st.SearchStrategy[bytes]:
    """YAML documents: a tree of the vocabulary, dumped (a top-level dict most of the time)."""
    top = st.dictionaries(st.sampled_from(keys), tree(keys, words), max_size=6)
    docs = st.one_of(top, top, tree(keys, words))
    return docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode("utf-8"))


def soup(fragments: list[str], max_size: int = 60) -> st.SearchStrategy[bytes]:
    """Text of fragments in any order, as UTF-8."""
    return st.lists(st.sampled_from(fragments), max_size=max_size).map(
        lambda parts: "".join(parts).encode("utf-8")
    )


def json_bytes(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS))
