"""The fuzz targets: each takes untrusted bytes and must end in a result or an exception
from :mod:`connector.errors`; anything else (a ``KeyError``, a ``RecursionError``, a
``LookupError``...) escapes and is a defect.

Shared by the Hypothesis tests in this folder (bounded, deterministic) and by
``benchmarks/fuzz.py`` (coverage-guided with atheris, for minutes). The first byte of a
target's input picks its options where it has any, so a coverage-guided fuzzer reaches
every option from one byte string.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from connector.config import parse_sources
from connector.emulator.bulk_request import ignored_operation, validate_bulk_request
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.operation import process_operation
from connector.emulator.tenant import EmulatorState
from connector.errors import ConnectorError
from connector.extract import ExtractProfile, read_extract
from connector.mapping import check_mapping, load_mapping
from connector.migrate import translate_psd1
from connector.migrate.psd1 import decode_psd1

__all__ = ["KNOWN_DEFECTS", "TARGETS", "KnownDefect", "holds"]

_ENCODINGS = (None, "utf-8", "cp1252", "utf-16", "latin-1")
_DELIMITERS = (None, ",", ";", "\t", "|")
_FIELD_LIMITS = (4096, 16)
_ID_COLUMNS = (None, "EmployeeId", "id")
_SP = "00000000-0000-0000-0000-00000000f022"
_JOB = "API2AAD.fuzz"


def _options(data: bytes) -> tuple[int, bytes]:
    return (data[0], data[1:]) if data else (0, b"")


def extract(data: bytes) -> None:
    """The extract reader: bytes → rows (read to the end) or an ExtractError."""
    pick, body = _options(data)
    profile = ExtractProfile(
        encoding=_ENCODINGS[pick % 5],
        delimiter=_DELIMITERS[pick // 5 % 5],
        max_field_bytes=_FIELD_LIMITS[pick // 25 % 2],
        max_rejected_share=0.5,
    )
    id_column = _ID_COLUMNS[pick // 50 % 3]
    with read_extract(
        io.BytesIO(body),
        profile,
        id_column=id_column,
        check_rejected_share=pick % 2 == 0,
        label="fuzz.csv",
    ) as reader:
        for row in reader:
            assert row.line >= 1
        assert reader.stats.rows_read >= 0


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace") + "\n"  # a newline: text, not a path


def mapping(data: bytes) -> None:
    """The mapping loader and validator: YAML text → Mapping or a MappingError."""
    text = _text(data)
    compiled, problems, _warnings = check_mapping(text, partial=True)
    assert compiled is not None or problems
    strict, problems, _warnings = check_mapping(text)
    if strict is not None and not problems:
        load_mapping(text)


def sources(data: bytes) -> None:
    """The sources config loader: YAML text → SourcesConfig or a ConfigError."""
    parse_sources(_text(data), path=Path("fuzz") / "sources.yaml")


def psd1(data: bytes) -> None:
    """The psd1 importer: bytes → a translation whose YAML the mapping loader reads."""
    pick, body = _options(data)
    text = decode_psd1(body, "fuzz.psd1", (None, "cp1252", "utf-16")[pick % 3])
    check_mapping(translate_psd1(text, "fuzz.psd1").yaml)


def bulk(data: bytes) -> None:
    """The emulator's bulkUpload parser, then its processing of what it accepted: a body
    that is not JSON is a 400 (orjson's error, answered by the app), a JSON value is
    operations or a BulkValidationError, and every accepted operation gets a log entry."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    ops = validate_bulk_request(body)
    state = EmulatorState(EmulatorConfig(jobs=[JobConfig(service_principal_id=_SP, job_id=_JOB)]))
    job = state.jobs[_JOB]
    for op in ops:
        if not ignored_operation(op):
            entry = process_operation(state, job, op["data"], "fuzz-cycle")
            assert entry.status in ("success", "failure", "skipped"), entry.status


TARGETS: dict[str, Callable[[bytes], None]] = {
    "extract": extract,
    "mapping": mapping,
    "sources": sources,
    "psd1": psd1,
    "bulk": bulk,
}


@dataclass(frozen=True)
class KnownDefect:
    """A crash found by fuzzing in a file of another area, kept as a strict xfail test
    under ``regressions/`` until fixed; the fuzzers step over it meanwhile so that they
    can look for others. Remove the entry when its regression test passes."""

    target: str
    error: type[BaseException]
    message: str
    regression: str

    def matches(self, target: str, exc: BaseException) -> bool:
        return target == self.target and type(exc) is self.error and self.message in str(exc)


KNOWN_DEFECTS: tuple[KnownDefect, ...] = ()


def holds(target: str, data: bytes, *, known: tuple[KnownDefect, ...] = KNOWN_DEFECTS) -> None:
    """Run ``target`` on ``data``; an error from connector/errors.py is a fine answer, and
    so is one of the ``known`` defects (each has its own failing regression test)."""
    try:
        TARGETS[target](data)
    except ConnectorError:
        pass
    except Exception as exc:
        if not any(k.matches(target, exc) for k in known):
            raise
