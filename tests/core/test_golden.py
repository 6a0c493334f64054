"""Golden payloads: the bundled samples give exactly these bytes (reviewed, then pinned).

To change them on purpose, rerun ``connector preview`` into ``tests/core/golden/<name>``
and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connector.cli.preview import run_preview

from .helpers import CSV2SCIM_EXTRACT, CSV2SCIM_MAPPING, DEFAULT_MAPPING, GOLDEN, HR_EXTRACT


@pytest.mark.parametrize(
    ("name", "mapping", "extract"),
    [("default", DEFAULT_MAPPING, HR_EXTRACT), ("csv2scim", CSV2SCIM_MAPPING, CSV2SCIM_EXTRACT)],
)
def test_payload_bytes_match_golden(
    name: str, mapping: Path, extract: Path, tmp_path: Path
) -> None:
    summary = run_preview(mapping, extract, tmp_path)
    golden = GOLDEN / name
    expected = sorted(p.name for p in golden.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    for fname in expected:
        assert (tmp_path / fname).read_bytes() == (golden / fname).read_bytes(), fname
    assert summary.requests == len([f for f in expected if f.startswith("bulk-")])


def test_golden_payloads_follow_the_documented_shape() -> None:
    for path in sorted(GOLDEN.glob("*/bulk-*.json")):
        body = orjson.loads(path.read_bytes())
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"]
        ops = body["Operations"]
        assert 1 <= len(ops) <= 50
        for op in ops:
            assert list(op) == ["method", "bulkId", "path", "data"]
            assert (op["method"], op["path"]) == ("POST", "/Users")
            data = op["data"]
            assert list(data)[:2] == ["schemas", "externalId"]
            assert data["schemas"][:2] == [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            ]
            assert op["bulkId"].startswith(data["externalId"] + ":L")
            assert isinstance(data["active"], bool)
