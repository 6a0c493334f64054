"""The extract profile: settings checked when it is built, text encodings only."""

from __future__ import annotations

import pytest

from connector.extract import ExtractProfile
from connector.extract_profile import encoding_problem


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"encoding": "nope-8"}, "unknown encoding"),
        ({"delimiter": ";;"}, "one character"),
        ({"delimiter": '"'}, "one character"),
        ({"max_field_bytes": 0}, "at least 1"),
        ({"max_rejected_share": 1.5}, "between 0 and 1"),
    ],
)
def test_profile_rejects_bad_settings(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ExtractProfile(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib_codec", "bz2_codec", "uu"])
def test_a_codec_that_is_not_a_text_encoding_is_refused(codec: str) -> None:
    problem = encoding_problem(codec)
    assert problem is not None
    assert "is not a text encoding" in problem
    with pytest.raises(ValueError, match="not a text encoding"):
        ExtractProfile(encoding=codec)


@pytest.mark.parametrize("name", ["utf-8", "cp1252", "latin-1", "utf-16", "UTF8"])
def test_text_encodings_are_accepted(name: str) -> None:
    assert encoding_problem(name) is None
