"""Extract + mapping → a stream of complete SCIM users, with rejected rows kept aside.

This is what the sync engine, the Functions app and ``connector preview`` iterate:
one :class:`MappedRecord` per accepted row, in file order, memory flat. A row whose
mapping fails (bad date, value not in a lookup, non-boolean ``active``) is rejected
with its line and reason and the rest goes on; so is a record whose bulk operation
alone is over the request byte cap (``operation_too_large``), which could never be
sent. The file-level rejected-share cap counts those rejections too and is checked
after the last row.

Duplicate ids are found before the first record by default (the id column is read
first). A caller that can drop what it made and start over (``connector preview``)
passes ``ids_in_pass`` and reads the file once: on a repeated id it gets
:class:`~connector.errors.ReadAgainError` after the last record and reads again with
that error's ``duplicates``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

import orjson

from connector.errors import ExtractError, TransformError
from connector.extract import (
    ExtractProfile,
    ExtractReader,
    ExtractStats,
    RejectedRow,
    RejectReason,
)
from connector.mapping import Mapping
from connector.scim import (
    DEFAULT_MAX_REQUEST_BYTES,
    BulkOperation,
    SerializedOperation,
    make_bulk_id,
    max_operation_bytes,
)

__all__ = ["MappedRecord", "RecordStream", "iter_records"]

_T = TypeVar("_T")


class MappedRecord(NamedTuple):
    """One accepted row as the SCIM user to upsert; ``line`` is where the row starts."""

    line: int
    external_id: str
    data: dict[str, Any]

    def to_operation(self) -> BulkOperation:
        """The bulk operation for this record, with a bulkId naming its source line."""
        return BulkOperation(make_bulk_id(self.external_id, self.line), self.external_id, self.data)


class RecordStream:
    """Iterate once for :class:`MappedRecord`; ``rejected`` and ``stats`` fill in as you go.

    After the last record, raises :class:`~connector.errors.TooManyRejectedRowsError`
    when the rejected share (reader and mapping rejections together) is over the
    profile's cap. Stopping early skips that check. Each record's bulk operation is
    measured against ``max_request_bytes`` (the cap the batches will be built with);
    one that could not fit a request alone is rejected as ``operation_too_large``.
    """

    def __init__(
        self,
        reader: ExtractReader,
        mapping: Mapping,
        max_rejected_share: float,
        *,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        ids_in_pass: bool = False,
        duplicates: Collection[int] | None = None,
    ) -> None:
        self.reader = reader
        self.ids_in_pass = ids_in_pass
        self.duplicates = duplicates
        self.mapping = mapping
        self.max_rejected_share = max_rejected_share
        self.max_request_bytes = max_request_bytes
        missing = [c for c in mapping.required_columns if c not in reader.header]
        if missing:
            raise ExtractError(
                f"the extract lacks columns the mapping {mapping.source} uses: "
                + ", ".join(missing),
                path=reader.label,
                line=1,
            )

    @property
    def header(self) -> list[str]:
        return self.reader.header

    @property
    def rejected(self) -> list[RejectedRow]:
        return self.reader.rejected

    @property
    def stats(self) -> ExtractStats:
        return self.reader.stats

    def __iter__(self) -> Iterator[MappedRecord]:
        return self._iterate(MappedRecord)

    def operations(self) -> Iterator[BulkOperation]:
        """The records as bulk operations, ready for :func:`connector.scim.build_bulk_requests`.

        Use it instead of iterating the stream (not both): the stream is read once. The
        operations are :class:`~connector.scim.SerializedOperation` objects: their size was
        checked, and the batch builder reuses their bytes. Build them with the same
        ``max_bytes`` as ``max_request_bytes`` here.
        """
        return _Operations(self)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _iterate(
        self, make: Callable[[int, str, dict[str, Any]], _T] | None, *, packed: bool = False
    ) -> Iterator[Any]:
        """``make(line, externalId, data)`` per record; None builds bulk operations inline.

        ``packed`` (with None) yields ``(bulkId, externalId, json)`` tuples instead, for
        :func:`connector.scim.build_bulk_requests` alone: no object per record.
        """
        ext_col = self.mapping.external_id_column
        reject = self.reader.add_rejected
        # Rows come as lists of the columns the mapping reads, and the mapping is bound to
        # their positions: no dict is built per row.
        columns = self.reader.selected_columns(self.mapping.required_columns)
        apply = self.mapping.bind(columns)
        ext_pos = columns.index(ext_col)
        cap = self.max_request_bytes
        limit = max_operation_bytes(cap)
        dumps = orjson.dumps
        # one envelope refilled per record (its keys stay in place, in order): what
        # serialize_operation dumps, without a dict made and freed per row
        envelope: dict[str, Any] = {"method": "POST", "bulkId": "", "path": "/Users", "data": None}

        def handle(line: int, values: list[str]) -> Any:
            ext = values[ext_pos]
            if not ext:
                reject(line, "", "empty_external_id", f"{ext_col} is empty")
                return None
            try:
                data = apply(values, ext)
            except TransformError as exc:
                reject(line, ext, exc.reason_code, str(exc))
                return None
            bulk_id = f"{ext}:L{line}"  # make_bulk_id(ext, line), spelled out
            # the operation exactly as build_bulk_requests writes it (serialize_operation)
            envelope["bulkId"] = bulk_id
            envelope["data"] = data
            chunk = dumps(envelope)
            if len(chunk) > limit:
                reject(
                    line,
                    ext,
                    RejectReason.OPERATION_TOO_LARGE,
                    f"its bulk operation is {len(chunk) + cap - limit} bytes, over the request"
                    f" cap of {cap} bytes; shorten the longest mapped values",
                )
                return None
            if make is None:
                if packed:
                    return (bulk_id, ext, chunk)
                return SerializedOperation(bulk_id, ext, data, chunk)
            return make(line, ext, data)

        # the reader checks the share after the last row: no second generator layer
        return self.reader.iter_mapped(
            handle,
            max_rejected_share=self.max_rejected_share,
            columns=self.mapping.required_columns,
            as_list=True,
            ids_in_pass=self.ids_in_pass,
            duplicates=self.duplicates,
        )


class _Operations:
    """What :meth:`RecordStream.operations` returns: an iterator of SerializedOperation.

    :func:`connector.scim.build_bulk_requests` recognises it (``_packed``) and reads the
    records as ``(bulkId, externalId, json)`` tuples, which is cheaper than an object per
    record. Either way the stream is read once.
    """

    __slots__ = ("_it", "_stream")

    def __init__(self, stream: RecordStream) -> None:
        self._stream = stream
        self._it: Iterator[SerializedOperation] | None = None

    def _ops(self) -> Iterator[SerializedOperation]:
        if self._it is None:
            self._it = self._stream._iterate(None)
        return self._it

    def __iter__(self) -> Iterator[BulkOperation]:
        return self._ops()

    def __next__(self) -> BulkOperation:
        return next(self._ops())

    def _packed(self) -> Iterator[tuple[str, str, bytes]]:
        if self._it is not None:  # already iterated as objects: go on that way
            return ((op.bulk_id, op.external_id, op.json) for op in self._it)
        self._it = iter(())
        return self._stream._iterate(None, packed=True)


def iter_records(
    source: str | Path | BinaryIO,
    mapping: Mapping,
    *,
    profile: ExtractProfile | None = None,
    label: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ids_in_pass: bool = False,
    duplicates: Collection[int] | None = None,
) -> RecordStream:
    """Stream ``source`` through ``mapping``; see :class:`RecordStream`.

    ``profile`` overrides the mapping's ``extract:`` section (its ``id_column``
    defaults to the mapping's externalId column). ``max_request_bytes`` is the request
    byte cap the records' batches will be built with: a record whose operation alone is
    over it is rejected (``operation_too_large``) instead of failing the batching. Raises
    :class:`~connector.errors.ExtractError` at once for an unreadable file, a bad
    header or columns the mapping needs that the header lacks. ``ids_in_pass`` and
    ``duplicates``: see the module docstring and :meth:`ExtractReader.iter_mapped`.
    """
    prof = profile or mapping.extract_profile
    if prof.id_column is None:
        prof = replace(prof, id_column=mapping.external_id_column)
    reader = ExtractReader(source, prof, check_rejected_share=False, label=label)
    try:
        return RecordStream(
            reader,
            mapping,
            prof.max_rejected_share,
            max_request_bytes=max_request_bytes,
            ids_in_pass=ids_in_pass,
            duplicates=duplicates,
        )
    except ExtractError:
        reader.close()
        raise
