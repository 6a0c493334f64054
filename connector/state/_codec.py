"""On-disk formats shared by the state stores: the record index and the payload file.

Both are gzip streams of one line per record, written and read as streams so a
million records never need to be in memory as text:

- index: a header line ``{"format": "connector-index", "version": 1, ...}``, then one
  JSON array per record: ``[externalId, fingerprint hex, active 0/1, outcome,
  error code, sent at (Unix s), run id]``;
- payloads: ``<externalId as an ASCII JSON string> TAB <payload JSON>`` per line. The
  key is JSON-encoded so it never contains a raw tab, and it is compared as bytes
  without parsing the (much larger) payload.

Compression level 1: these files are rewritten on every save, and speed matters more
than the last few percent of size.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import itertools
import json
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import IO, Any

import orjson

from connector.errors import StateError
from connector.state.base import FINGERPRINT_SIZE, RecordEntry

__all__ = [
    "INDEX_FORMAT",
    "merge_payloads",
    "read_index",
    "read_index_runs",
    "read_payloads",
    "scan_payloads",
    "write_index",
]

INDEX_FORMAT = "connector-index"
INDEX_VERSION = 1
_COMPRESSLEVEL = 1


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building or walking a million small objects: none of
    them form cycles, and collections triggered by the allocations alone triple the
    time of a load."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_index(out: IO[bytes], source: str, entries: Mapping[str, RecordEntry]) -> int:
    """Write ``entries`` to ``out`` as a gzip'd index; returns the record count."""
    dumps = orjson.dumps
    with (
        _gc_paused(),
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_COMPRESSLEVEL, mtime=0) as gz,
    ):
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
        with _gc_paused(), gzip.GzipFile(fileobj=src, mode="rb") as gz:
            _check_index_header(gz, where)
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


def _check_index_header(gz: gzip.GzipFile, where: str) -> None:
    header = orjson.loads(gz.readline() or b"null")
    if not isinstance(header, dict) or header.get("format") != INDEX_FORMAT:
        raise StateError(f"{where}: not a record index (bad header)")
    if header.get("version") != INDEX_VERSION:
        raise StateError(
            f"{where}: record index version {header.get('version')!r} is not supported"
            f" (expected {INDEX_VERSION}); upgrade the connector"
        )


def read_index_runs(
    src: IO[bytes], external_ids: AbstractSet[str], where: str
) -> dict[str, str | None]:
    """The run id of each of ``external_ids`` that the index written by
    :func:`write_index` holds (others left out), read a line at a time: no entry of the
    other records is kept."""
    loads = orjson.loads
    interned: dict[str, str] = {}
    runs: dict[str, str | None] = {}
    try:
        with gzip.GzipFile(fileobj=src, mode="rb") as gz:
            _check_index_header(gz, where)
            for line in gz:
                ext, _, _, _, _, _, run = loads(line)
                if ext in external_ids:
                    runs[ext] = None if run is None else interned.setdefault(run, run)
    except (OSError, EOFError, ValueError, orjson.JSONDecodeError) as exc:
        raise StateError(f"{where}: record index is corrupt: {exc}") from exc
    return runs


def _key(external_id: str) -> bytes:
    """The key column of a payload line: the externalId as an ASCII JSON string.

    Deliberately ``json`` rather than ``orjson``: orjson returns bytes objects that keep
    its whole output buffer (kilobytes each), and a save keeps one key per record in a
    set — a million of them would cost gigabytes instead of megabytes.
    """
    return json.dumps(external_id).encode("ascii")


def _payload_lines(src: IO[bytes], where: str) -> Iterator[tuple[bytes, bytes]]:
    """(JSON-encoded key, whole line) per payload line. Keys are compared encoded: the
    encoding of a string is canonical, and it saves decoding a million keys."""
    try:
        with gzip.GzipFile(fileobj=src, mode="rb") as gz:
            for line in gz:
                key, sep, _ = line.partition(b"\t")
                if not sep:
                    raise StateError(f"{where}: payload file is corrupt (line without a key)")
                yield key, line
    except (OSError, EOFError) as exc:
        raise StateError(f"{where}: payload file is corrupt: {exc}") from exc


def _json(payload: Mapping[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


def merge_payloads(
    src: IO[bytes] | None,
    out: IO[bytes],
    updates: Mapping[str, Mapping[str, Any] | bytes]
    | Iterable[tuple[str, Mapping[str, Any] | bytes]],
    drop: Collection[str],
    where: str,
) -> int:
    """Stream ``src`` to ``out`` without the payloads in ``updates`` or ``drop``, then
    append ``updates``; returns the number of payloads written.

    ``updates`` may be a mapping or a stream of ``(externalId, payload)`` pairs (each id
    at most once): a stream is spooled to a temporary file first, so a first load of a
    million records holds only their ids in memory. A payload may be given as its JSON
    bytes (as a stored plan keeps it): written as they are.
    """
    drop_keys = {_key(k) for k in drop}
    written = 0
    with contextlib.ExitStack() as stack:
        replaced: set[bytes]
        fresh: Iterable[bytes]
        if isinstance(updates, Mapping):
            replaced = {_key(k) for k in updates}
            fresh = (_key(k) + b"\t" + _json(v) + b"\n" for k, v in updates.items())
        else:
            spool = stack.enter_context(tempfile.TemporaryFile())
            replaced = set()
            for key, payload in updates:
                encoded = _key(key)
                if encoded in replaced:
                    raise ValueError(f"payload for {key!r} given twice in one save")
                replaced.add(encoded)
                spool.write(encoded + b"\t" + _json(payload) + b"\n")
            spool.seek(0)
            fresh = spool
        if drop_keys:
            fresh = (ln for ln in fresh if ln.partition(b"\t")[0] not in drop_keys)
        skip = replaced | drop_keys if drop_keys else replaced
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_COMPRESSLEVEL, mtime=0) as gz:
            buf: list[bytes] = []
            kept: Iterable[bytes] = (
                line
                for key, line in (_payload_lines(src, where) if src is not None else ())
                if key not in skip
            )
            for line in itertools.chain(kept, fresh):
                buf.append(line)
                written += 1
                if len(buf) >= 4096:
                    gz.write(b"".join(buf))
                    buf.clear()
            if buf:
                gz.write(b"".join(buf))
    return written


def scan_payloads(
    src: IO[bytes], external_ids: Collection[str], where: str
) -> Iterator[tuple[str, bytes]]:
    """``(externalId, payload JSON)`` of each of ``external_ids`` found in ``src``, in file
    order, the JSON not decoded (a million payloads can be spooled, never all held)."""
    wanted = {_key(ext): ext for ext in external_ids}
    if not wanted:
        return
    seen: set[str] = set()
    for key, line in _payload_lines(src, where):
        ext = wanted.get(key)
        if ext is not None and ext not in seen:
            seen.add(ext)
            yield ext, line.partition(b"\t")[2].rstrip(b"\n")
            if len(seen) == len(wanted):
                return


def read_payloads(src: IO[bytes], external_ids: Collection[str], where: str) -> dict[str, Any]:
    """The payloads of ``external_ids`` found in ``src`` (others are not decoded)."""
    wanted = {_key(ext): ext for ext in external_ids}
    found: dict[str, Any] = {}
    if not wanted:
        return found
    try:
        for key, line in _payload_lines(src, where):
            ext = wanted.get(key)
            if ext is not None and ext not in found:
                found[ext] = orjson.loads(line.partition(b"\t")[2])
                if len(found) == len(wanted):
                    break
    except orjson.JSONDecodeError as exc:
        raise StateError(f"{where}: payload file is corrupt: {exc}") from exc
    return found
