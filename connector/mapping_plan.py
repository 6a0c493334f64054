"""A compiled mapping as data: the steps that build one SCIM user from one row.

The compiler (:mod:`connector.mapping_compile`) turns a mapping file into a
:class:`Plan` once; the executor (:mod:`connector.mapping_run`) turns a plan into the
function that maps rows, reading columns by name (rows as dicts) or by position (rows
as lists). Columns are named here, never resolved, so one plan serves both row forms
and leaving attributes out or binding to a layout never reads the file again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from connector.transforms import Transform

ACTIVE_REASON = (
    "an update that omits active disables the account"
    " (AzureAD/entra-id-inbound-provisioning issue #16, a user's report)"
)
"""Why every record must carry ``active``; cited by every message that enforces it."""


@dataclass(frozen=True, slots=True)
class Column:
    """The cell of one column; an empty cell is no value."""

    name: str


@dataclass(frozen=True, slots=True)
class Const:
    """A fixed value (text, number, boolean or null; empty text is no value)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Template:
    """``pattern`` (``{0}``, ``{1}``, ... for ``columns``); omitted when any part is empty."""

    pattern: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Coalesce:
    """The first of ``parts`` that gives a value."""

    parts: tuple[Expr, ...]


Source = Column | Const | Template | Coalesce

ConditionTest = Literal["empty", "not_empty", "in", "not_in"]


@dataclass(frozen=True, slots=True)
class Condition:
    """``when``: the test a column's cell must pass for the attribute or item to be set."""

    column: str
    test: ConditionTest
    wanted: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Expr:
    """A value: a source, then transforms; ``text_only``: always text or no value."""

    source: Source
    transforms: tuple[Transform, ...] = ()
    when: Condition | None = None
    send_null: bool = False
    text_only: bool = True
    may_bool: bool = False

    @property
    def plain_column(self) -> str | None:
        """The column when the value is that column's cell as is (copied without a call)."""
        if self.transforms or self.when is not None or self.send_null:
            return None
        return self.source.name if isinstance(self.source, Column) else None

    @property
    def bool_only(self) -> bool:
        """The last transform always gives a boolean (``equals``, a boolean lookup)."""
        return bool(self.transforms) and self.transforms[-1].produces_bool


@dataclass(frozen=True, slots=True)
class Copy:
    """A column's non-empty cell copied as is to ``key`` of the container at ``path``."""

    path: tuple[str, ...]
    key: str
    column: str


@dataclass(frozen=True, slots=True)
class Assign:
    """A single-valued attribute set from ``expr``, checked against its ``kind``."""

    target: str  # e.g. "name.givenName", "urn:...:User:HireDate"
    path: tuple[str, ...]
    kind: str  # "string" | "boolean" | "any"
    expr: Expr
    required: bool  # ``active``: an empty value rejects the row


@dataclass(frozen=True, slots=True)
class Item:
    """One item of a multi-valued attribute: sub-attributes, ``type``, ``primary``, ``when``."""

    subs: tuple[tuple[str, Expr], ...]
    type: str
    primary: bool | None
    when: Condition | None


@dataclass(frozen=True, slots=True)
class Items:
    """A multi-valued attribute (``emails``, ``phoneNumbers``, ``addresses``)."""

    attr: str
    items: tuple[Item, ...]


Step = Copy | Assign | Items


@dataclass(frozen=True, slots=True)
class Plan:
    """The steps in output order and the custom namespaces ``data.schemas`` may list."""

    steps: tuple[Step, ...]
    namespaces: tuple[str, ...]
