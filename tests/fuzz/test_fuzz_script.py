"""benchmarks/fuzz.py: a finding becomes a regression test that reproduces it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from benchmarks.fuzz import TARGET_NAMES, run_mutate, seeds
from tests.fuzz import targets


def test_every_target_has_seeds_and_the_seeds_hold() -> None:
    assert set(TARGET_NAMES) == set(targets.TARGETS)
    for name in TARGET_NAMES:
        assert seeds(name)
        for data in seeds(name):
            targets.holds(name, data)


def test_a_crash_found_by_the_mutating_fuzzer_is_written_as_a_failing_regression_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def planted(data: bytes) -> None:
        if b"\x00" in data:
            raise KeyError("planted defect")

    monkeypatch.setitem(targets.TARGETS, "bulk", planted)
    result = run_mutate("bulk", 120, seed=17, folder=tmp_path)
    assert result["found"], result  # stops at the first finding
    [written] = tmp_path.glob("test_found_bulk_*.py")
    assert "KeyError" in written.read_text(encoding="utf-8")
    spec = importlib.util.spec_from_file_location("found", written)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert b"\x00" in module.INPUT
    [test] = [f for n, f in vars(module).items() if n.startswith("test_")]
    with pytest.raises(KeyError, match="planted"):
        test()
