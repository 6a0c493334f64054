"""Every example config in docs/sources.md's pulled-sources section is a valid config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connector.config import parse_sources
from tests.sources.helpers import ENDPOINT

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"


def _examples() -> list[str]:
    text = DOC.read_text(encoding="utf-8").split("## Pulled sources", 1)[1]
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.S)


def _complete(block: str) -> str:
    block = re.sub(r"endpoint: \S+", f"endpoint: {ENDPOINT}", block)
    block = block.replace("endpoint: …", f"endpoint: {ENDPOINT}")
    lines = [ln for ln in block.splitlines() if ln.strip() != "…"]
    body = "\n".join(lines)
    if "endpoint:" not in body:
        body = re.sub(r"(\n    mode: )", f"\n    endpoint: {ENDPOINT}\\1", body)
    return body if body.startswith("sources:") else "sources:\n" + body


@pytest.mark.parametrize("block", _examples())
def test_documented_examples_are_valid_configs(block: str) -> None:
    config = parse_sources(_complete(block))
    assert all(s.kind in ("sql", "rest") for s in config.sources)


def test_every_pulled_kind_has_an_example() -> None:
    kinds = {s.kind for b in _examples() for s in parse_sources(_complete(b)).sources}
    assert kinds == {"sql", "rest"}
