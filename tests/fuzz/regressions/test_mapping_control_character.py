"""Found by fuzzing the mapping loader: a mapping file holding a control character YAML
does not allow (NUL, ESC, ...; e.g. a stray byte from a copy and paste) ended in a bare
``yaml.reader.ReaderError`` instead of a MappingError naming the file and line."""

from __future__ import annotations

import pytest

from tests.fuzz.targets import holds


@pytest.mark.parametrize("data", [b"\x00", b"version: 1\nexternalId: Id\x1b\n"])
def test_a_control_character_in_a_mapping_is_a_mapping_error(data: bytes) -> None:
    holds("mapping", data, known=())


def test_the_error_names_the_line_and_code_point_not_the_text() -> None:
    from connector.errors import MappingError
    from connector.mapping import load_mapping

    with pytest.raises(MappingError) as raised:
        load_mapping("version: 1\nexternalId: Id\x1b\n")
    assert "<mapping>:2: character U+001B is not allowed in YAML" in str(raised.value)
