"""On-disk formats shared by the state stores: the record index and the payload file.

Both are gzip streams of one line per record, written and read as streams so a
million records never need to be in memory as text:

- index: a header line ``{"format": "connector-index", "version": 1, ...}``, then one
  JSON array per record: ``[externalId, fingerprint hex, active 0/1, outcome,
  error code, sent at (Unix s), run id]``;
- payloads: ``<externalId as a JSON string> TAB <payload JSON>`` per line. The key is
  JSON-encoded so it never contains a raw tab, and it can be read without parsing the
  (much larger) payload.

Compression level 1: these files are rewritten on every save, and speed matters more
than the last few percent of size.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import IO, Any

import orjson

from connector.errors import StateError
from connector.state.base import FINGERPRINT_SIZE, RecordEntry

__all__ = [
    "INDEX_FORMAT",
    "merge_payloads",
    "read_index",
    "read_payloads",
    "write_index",
]

INDEX_FORMAT = "connector-index"
INDEX_VERSION = 1
_COMPRESSLEVEL = 1


def write_index(out: IO[bytes], source: str, entries: Mapping[str, RecordEntry]) -> int:
    """Write ``entries`` to ``out`` as a gzip'd index; returns the record count."""
    dumps = orjson.dumps
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_COMPRESSLEVEL, mtime=0) as gz:
        header = {"format": INDEX_FORMAT, "version": INDEX_VERSION, "source": source}
        gz.write(dumps(header) + b"\n")
        buf: list[bytes] = []
        for ext, e in entries.items():
            buf.append(
                dumps(
                    [
                        ext,
                        e.fingerprint.hex(),
                        1 if e.active else 0,
                        e.outcome,
                        e.error_code,
                        e.sent_at,
                        e.run_id,
                    ]
                )
            )
            if len(buf) >= 4096:
                gz.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            gz.write(b"\n".join(buf) + b"\n")
    return len(entries)


def read_index(src: IO[bytes], where: str) -> dict[str, RecordEntry]:
    """Read an index written by :func:`write_index`. Outcome and run-id strings are
    shared between entries (a million records carry a handful of distinct values)."""
    loads = orjson.loads
    fromhex = bytes.fromhex
    interned: dict[str, str] = {}
    entries: dict[str, RecordEntry] = {}
    try:
        with gzip.GzipFile(fileobj=src, mode="rb") as gz:
            header = loads(gz.readline() or b"null")
            if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
                raise StateError(f"{where}: not a record index (bad header)")
            if header.get("version") != INDEX_VERSION:
                raise StateError(
                    f"{where}: record index version {header.get('version')!r} is not supported"
                    f" (expected {INDEX_VERSION}); upgrade the connector"
                )
            for line in gz:
                ext, fp, active, outcome, err, sent, run = loads(line)
                if len(fp) != 2 * FINGERPRINT_SIZE:
                    raise StateError(f"{where}: record {ext!r} has a malformed fingerprint")
                outcome = interned.setdefault(outcome, outcome)
                if run is not None:
                    run = interned.setdefault(run, run)
                entries[ext] = RecordEntry(fromhex(fp), active == 1, outcome, err, sent, run)
    except (OSError, EOFError, ValueError, orjson.JSONDecodeError) as exc:
        raise StateError(f"{where}: record index is corrupt: {exc}") from exc
    return entries


def _payload_lines(src: IO[bytes], where: str) -> Iterator[tuple[str, bytes]]:
    try:
        with gzip.GzipFile(fileobj=src, mode="rb") as gz:
            for line in gz:
                key, sep, _ = line.partition(b"\t")
                if not sep:
                    raise StateError(f"{where}: payload file is corrupt (line without a key)")
                yield orjson.loads(key), line
    except (OSError, EOFError, orjson.JSONDecodeError) as exc:
        raise StateError(f"{where}: payload file is corrupt: {exc}") from exc


def merge_payloads(
    src: IO[bytes] | None,
    out: IO[bytes],
    updates: Mapping[str, Mapping[str, Any]] | Iterable[tuple[str, Mapping[str, Any]]],
    drop: Collection[str],
    where: str,
) -> int:
    """Stream ``src`` to ``out`` without the payloads in ``updates`` or ``drop``, then
    append ``updates``; returns the number of payloads written.

    ``updates`` may be a mapping or a stream of ``(externalId, payload)`` pairs (each id
    at most once): a stream is spooled to a temporary file first, so a first load of a
    million records holds only their ids in memory.
    """
    dumps = orjson.dumps
    written = 0
    with contextlib.ExitStack() as stack:
        if isinstance(updates, Mapping):
            keys: Collection[str] = updates.keys()
            fresh: Iterable[bytes] = (
                dumps(k) + b"\t" + dumps(v) + b"\n" for k, v in updates.items() if k not in drop
            )
        else:
            spool = stack.enter_context(tempfile.TemporaryFile())
            seen: set[str] = set()
            for key, payload in updates:
                if key in seen:
                    raise ValueError(f"payload for {key!r} given twice in one save")
                seen.add(key)
                spool.write(dumps(key) + b"\t" + dumps(payload) + b"\n")
            spool.seek(0)
            keys = seen
            fresh = (line for line in spool if orjson.loads(line.partition(b"\t")[0]) not in drop)
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_COMPRESSLEVEL, mtime=0) as gz:
            buf: list[bytes] = []
            lines: Iterable[bytes] = (
                line
                for key, line in (_payload_lines(src, where) if src is not None else ())
                if key not in keys and key not in drop
            )
            for line in itertools.chain(lines, fresh):
                buf.append(line)
                written += 1
                if len(buf) >= 4096:
                    gz.write(b"".join(buf))
                    buf.clear()
            if buf:
                gz.write(b"".join(buf))
    return written


def read_payloads(src: IO[bytes], external_ids: Collection[str], where: str) -> dict[str, Any]:
    """The payloads of ``external_ids`` found in ``src`` (others are not decoded)."""
    wanted = external_ids if isinstance(external_ids, set | frozenset) else set(external_ids)
    found: dict[str, Any] = {}
    if not wanted:
        return found
    for key, line in _payload_lines(src, where):
        if key in wanted:
            found[key] = orjson.loads(line.partition(b"\t")[2])
            if len(found) == len(wanted):
                break
    return found
