"""A bulkUpload body checked against the documented BulkRequest shape (pure).

Graph ``bulkUpload`` resource: "The following key-value pairs are _required_ in each object
in the array": ``method`` ("must be set to POST"), ``path`` "always set to the value
/Users", ``bulkId``, ``data`` whose ``schemas`` "must have" the core and enterprise User
URNs, and ``externalId``; 1 to 50 operations. Where Microsoft's own examples are looser
than the text (a repeated bulkId, a DELETE), the emulator accepts what they send
(docs/emulator.md, *Assumptions: Requests and validation*).
"""

from __future__ import annotations

from typing import Any

from connector.errors import BulkValidationError
from connector.scim import (
    BULK_REQUEST_SCHEMA,
    CORE_USER_SCHEMA,
    ENTERPRISE_USER_SCHEMA,
    MAX_OPERATIONS_PER_REQUEST,
)

__all__ = ["ignored_operation", "validate_bulk_request"]


def validate_bulk_request(body: Any) -> list[dict[str, Any]]:
    """Check a parsed BulkRequest against the documented rules; return its operations.

    Raises BulkValidationError naming the first broken rule and where.
    """
    if not isinstance(body, dict):
        raise BulkValidationError("the body must be a JSON object (a SCIM BulkRequest)")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or BULK_REQUEST_SCHEMA not in schemas:
        raise BulkValidationError(f"schemas must be a list containing '{BULK_REQUEST_SCHEMA}'")
    ops = body.get("Operations")
    if ops is None:
        hint = " (the key is 'Operations', capital O)" if "operations" in body else ""
        raise BulkValidationError("Operations is missing" + hint)
    if not isinstance(ops, list):
        raise BulkValidationError("Operations must be an array")
    if not ops:
        raise BulkValidationError("Operations is empty; send 1 to 50 operations")
    if len(ops) > MAX_OPERATIONS_PER_REQUEST:
        raise BulkValidationError(
            f"Operations has {len(ops)} operations; the maximum per request is"
            f" {MAX_OPERATIONS_PER_REQUEST}"
        )
    for i, op in enumerate(ops):
        where = f"Operations[{i}]"
        if not isinstance(op, dict):
            raise BulkValidationError(f"{where} must be an object")
        method = op.get("method")
        if method == "DELETE":
            continue  # accepted and ignored: see ignored_operation
        if method != "POST":
            raise BulkValidationError(f"{where}.method must be 'POST', got {method!r}")
        _validate_post(op, where)
    return ops


def ignored_operation(op: dict[str, Any]) -> bool:
    """A DELETE operation: accepted in the request, then neither processed nor logged.

    Microsoft (Q&A 2028268, 2024-09-03): the inbound API "can disable a user but it cannot
    delete them"; a DELETE "doesn't do anything. It's not even logged". The bulkUpload
    resource page: "method key must be set to POST".
    """
    return op.get("method") == "DELETE"


def _validate_post(op: dict[str, Any], where: str) -> None:
    """One POST operation's documented shape. bulkIds may repeat: Microsoft's Graph Explorer
    tutorial sends the same bulkId for both of its operations and gets 202."""
    if op.get("path") != "/Users":
        raise BulkValidationError(f"{where}.path must be '/Users', got {op.get('path')!r}")
    bulk_id = op.get("bulkId")
    if not isinstance(bulk_id, str) or not bulk_id:
        raise BulkValidationError(f"{where}.bulkId must be a non-empty string")
    data = op.get("data")
    if not isinstance(data, dict):
        raise BulkValidationError(f"{where}.data must be an object (the SCIM user)")
    data_schemas = data.get("schemas")
    if not isinstance(data_schemas, list):
        raise BulkValidationError(f"{where}.data.schemas must be an array")
    for required in (CORE_USER_SCHEMA, ENTERPRISE_USER_SCHEMA):
        if required not in data_schemas:
            raise BulkValidationError(f"{where}.data.schemas must include '{required}'")
    ext = data.get("externalId")
    if not _identifier(ext):
        raise BulkValidationError(
            f"{where}.data.externalId must be a non-empty string (or an integer)"
        )
    for key in data:
        if key.startswith("urn:") and key not in data_schemas:
            raise BulkValidationError(
                f"{where}.data uses the namespace '{key}' but data.schemas does not list it"
            )


def _identifier(value: Any) -> bool:
    """externalId is a string in every Microsoft example; an integer is accepted too (its
    decimal text is the id: assumed, undocumented), so the emulator is never stricter."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)
