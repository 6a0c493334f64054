"""Found by fuzzing the mapping loader: a mapping file holding a control character YAML
does not allow (NUL, ESC, ...; e.g. a stray byte from a copy and paste) ends in a bare
``yaml.reader.ReaderError`` from ``read_tree`` (the loader is built outside the ``try``)
instead of a MappingError naming the file. ``connector validate``, ``preview`` and
``sync`` then print a traceback. Owner: connector/mapping_yaml.py (input hardening).
Remove the entry in tests/fuzz/targets.py KNOWN_DEFECTS with this xfail when fixed."""

from __future__ import annotations

import pytest
import yaml

from tests.fuzz.targets import holds


@pytest.mark.xfail(
    strict=True,
    raises=yaml.reader.ReaderError,
    reason="mapping_yaml.py: a control character raises ReaderError, not MappingError",
)
@pytest.mark.parametrize("data", [b"\x00", b"version: 1\nexternalId: Id\x1b\n"])
def test_a_control_character_in_a_mapping_is_a_mapping_error(data: bytes) -> None:
    holds("mapping", data, known=())
