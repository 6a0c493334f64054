"""CSV2SCIM ``AttributeMapping.psd1`` → this connector's mapping YAML.

CSV2SCIM's rules (its README, ``Samples/AttributeMapping.psd1`` and its
``Resolve-PropertyMappingValue``): a key is a SCIM attribute; a **scriptblock** is run
with the row as ``$_``; a **hashtable** is a complex attribute (``name``, ``manager``); an
**array** is a multi-valued attribute, each item resolved alike; any other value (a
string, but also ``$true`` or a number) is a **property name**: the row's column of that
name. A ``urn:`` key holds a schema extension (the enterprise URN, or a custom
namespace).

Each entry becomes the equivalent mapping value. Comparisons keep PowerShell's
case-insensitive ``-eq`` (``[lower, {equals: ...}]``, as ``samples/mappings/csv2scim.yaml``
writes it); concatenations become templates. What has no equivalent is listed with its
line and left in the output as a commented placeholder. The output is then checked by
:func:`connector.mapping.check_mapping`, the product's own loader. Nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from connector.errors import MappingError, UntranslatableError
from connector.mapping import (
    CORE_ATTRIBUTES,
    ENTERPRISE_ATTRIBUTES,
    MULTI_VALUED_ATTRIBUTES,
    check_mapping,
)
from connector.migrate.psd1 import (
    Array,
    Entry,
    Expandable,
    Hashtable,
    Literal,
    ScriptBlock,
    Value,
    parse_psd1,
    read_psd1,
)
from connector.migrate.scriptblock import parse_expression
from connector.migrate.values import constant_of, expression_value
from connector.migrate.yaml_out import Block, Hole, Item, emit, scalar
from connector.scim import ENTERPRISE_USER_SCHEMA

__all__ = ["Translation", "Untranslated", "import_psd1", "translate_psd1"]

_CORE: Final = {k.lower(): k for k in CORE_ATTRIBUTES}
_MULTI: Final = {k.lower(): k for k in MULTI_VALUED_ATTRIBUTES}
_ENTERPRISE: Final = {k.lower(): k for k in ENTERPRISE_ATTRIBUTES}


@dataclass(frozen=True, slots=True)
class Untranslated:
    """An entry with no equivalent: where, which key, why (also a comment in the output)."""

    path: str
    line: int
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.key}: not translated: {self.reason}"


@dataclass(frozen=True, slots=True)
class Translation:
    """The mapping YAML and what a person must look at before using it.

    ``problems``/``warnings`` are the mapping loader's, on the output text (their
    ``file:line`` is the output file's). ``complete`` when nothing was left out and the
    loader found no problem.
    """

    yaml: str
    translated: int
    untranslated: tuple[Untranslated, ...]
    notes: tuple[str, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.untranslated and not self.problems


class _Translator:
    """Walks the psd1 tree once, building the output blocks, holes and notes."""

    def __init__(self, label: str, text: str) -> None:
        self.label = label
        self.text = text
        self.external_id: str | None = None
        self.core = Block()
        self.enterprise = Block()
        self.extensions: dict[str, Block] = {}
        self.untranslated: list[Untranslated] = []
        self.notes: list[str] = []
        self.translated = 0

    # --- bookkeeping ---------------------------------------------------------------------

    def hole(self, block: Block, entry: Entry, reason: str) -> None:
        block.entries.append(Hole(entry.line, entry.key, _source(entry.value, self.text), reason))
        self.untranslated.append(Untranslated(self.label, entry.line, entry.key, reason))

    def note(self, line: int, message: str) -> None:
        self.notes.append(f"{self.label}:{line}: {message}")

    def simple(self, block: Block, name: str, entry: Entry) -> None:
        """``name: <value>`` from a string (column), constant or scriptblock."""
        try:
            value = self.value(entry.value)
        except UntranslatableError as exc:
            self.hole(block, entry, exc.detail)
            return
        comment = ""
        if isinstance(entry.value, ScriptBlock):
            comment = f"psd1 line {entry.line}: {entry.value.source}"
        block.entries.append(Item(name, value, comment))
        self.translated += 1

    def value(self, value: Value) -> Any:
        """A mapping value: a column name, or a {column|const|template, transforms} dict."""
        if isinstance(value, Literal):
            if isinstance(value.value, str):
                if not value.value:
                    raise self.untranslatable(value.line, "an empty column name")
                return value.value
            if value.value is None:
                raise self.untranslatable(
                    value.line, "$null: leave the attribute out (or use send_null in the YAML)"
                )
            shown = _powershell_text(value.value)
            raise self.untranslatable(
                value.line,
                f"a plain {shown} names a column in CSV2SCIM (it reads the column {shown!r});"
                f" write {{ {_powershell_source(value.value)} }} for a constant",
            )
        if isinstance(value, ScriptBlock):
            expr = parse_expression(value.tokens, self.label, value.line)
            return expression_value(expr, self.label, value.line)
        if isinstance(value, Expandable):
            raise self.untranslatable(
                value.line,
                "a double-quoted string with $ outside a scriptblock (a data file does not"
                ' expand it); write { "$($_.A) $($_.B)" }',
            )
        kind = "a hashtable" if isinstance(value, Hashtable) else "an array"
        raise self.untranslatable(value.line, f"{kind} where a single value is expected")

    def untranslatable(self, line: int, reason: str) -> UntranslatableError:
        return UntranslatableError(reason, path=self.label, line=line)

    # --- the file's structure ------------------------------------------------------------

    def top(self, table: Hashtable) -> None:
        for entry in table.entries:
            key = entry.key.lower()
            if key == "externalid":
                self.external(entry)
            elif key == "schemas":
                self.note(entry.line, "schemas is left out: the connector sets data.schemas")
            elif key == ENTERPRISE_USER_SCHEMA.lower():
                self.namespace(entry, self.enterprise, enterprise=True)
            elif key.startswith("urn:"):
                block = self.extensions.setdefault(entry.key, Block())
                self.namespace(entry, block, enterprise=False)
            elif key in _ENTERPRISE:
                self.note(
                    entry.line,
                    f"{entry.key} is an enterprise attribute; CSV2SCIM sent it as a core"
                    " attribute, which SCIM does not define: moved under enterprise",
                )
                self.attribute(self.enterprise, entry, _ENTERPRISE[key], ENTERPRISE_ATTRIBUTES)
            elif key in _MULTI:
                self.multi(entry, _MULTI[key])
            elif key in _CORE:
                self.attribute(self.core, entry, _CORE[key], CORE_ATTRIBUTES)
            else:
                self.hole(
                    self.core,
                    entry,
                    f"{entry.key!r} is not a SCIM User attribute Entra's bulkUpload accepts;"
                    " custom attributes go under a urn: namespace",
                )

    def external(self, entry: Entry) -> None:
        value = entry.value
        if isinstance(value, Literal) and isinstance(value.value, str) and value.value:
            self.external_id = value.value
            self.translated += 1
        else:
            self.hole(self.core, entry, "externalId must be a plain column name ('WorkerID')")

    def namespace(self, entry: Entry, block: Block, *, enterprise: bool) -> None:
        if not isinstance(entry.value, Hashtable):
            self.hole(block, entry, "a urn: key needs a hashtable @{ attribute = value }")
            return
        for sub in entry.value.entries:
            if not enterprise:
                self.simple(block, sub.key, sub)
            elif sub.key.lower() in _ENTERPRISE:
                name = _ENTERPRISE[sub.key.lower()]
                self.attribute(block, sub, name, ENTERPRISE_ATTRIBUTES)
            else:
                self.hole(block, sub, f"{sub.key!r} is not an enterprise User attribute")

    def attribute(self, block: Block, entry: Entry, name: str, table: dict[str, Any]) -> None:
        kind = table[name]
        if not isinstance(kind, dict):
            self.simple(block, name, entry)
            return
        if not isinstance(entry.value, Hashtable):
            if name == "manager":
                self.simple(block, name, entry)
                self.note(
                    entry.line,
                    "manager from a plain value: sent as manager.value (CSV2SCIM sent a bare"
                    " string, which is not the SCIM shape)",
                )
                return
            self.hole(block, entry, f"{name} needs a hashtable of sub-attributes @{{ ... }}")
            return
        subs = {k.lower(): k for k in kind}
        inner = Block()
        for sub in entry.value.entries:
            if sub.key.lower() in subs:
                self.simple(inner, subs[sub.key.lower()], sub)
            else:
                known = ", ".join(kind)
                self.hole(inner, sub, f"{name} has no sub-attribute {sub.key!r}; known: {known}")
        self.place(block, name, inner)

    def place(self, block: Block, name: str, inner: Block) -> None:
        """Put a nested block in place; one of holes only stays as its comments."""
        if inner.has_items():
            block.entries.append(Item(name, inner))
        else:
            block.entries.extend(inner.entries)

    def multi(self, entry: Entry, name: str) -> None:
        value = entry.value
        if isinstance(value, Hashtable):
            self.note(entry.line, f"{name} is a single hashtable; CSV2SCIM needs @( @{{...}} )")
            items: tuple[Value, ...] = (value,)
        elif isinstance(value, Array):
            items = value.items
        else:
            self.hole(self.core, entry, f"{name} needs an array of hashtables @( @{{ ... }} )")
            return
        blocks: list[Block] = []
        for item in items:
            if not isinstance(item, Hashtable):
                self.hole(self.core, Entry(name, item, item.line), "each item must be @{ ... }")
                continue
            blocks.append(self.multi_item(name, item))
        kept = [b for b in blocks if b.has_items()]
        for dropped in (b for b in blocks if not b.has_items()):
            self.core.entries.extend(dropped.entries)
        if kept:
            self.core.entries.append(Item(name, kept))

    def multi_item(self, name: str, item: Hashtable) -> Block:
        subs = {k.lower(): k for k in MULTI_VALUED_ATTRIBUTES[name]}
        block = Block()
        typed = False
        for sub in item.entries:
            key = sub.key.lower()
            if key in ("type", "primary"):
                typed |= key == "type"
                self.constant(block, sub, key)
            elif key in subs:
                self.simple(block, subs[key], sub)
            else:
                known = ", ".join((*MULTI_VALUED_ATTRIBUTES[name], "type", "primary"))
                self.hole(block, sub, f"{name} items have no {sub.key!r}; known: {known}")
        if not typed and block.has_items():
            self.note(
                item.line,
                f"this {name} item has no type: CSV2SCIM sent none and Entra ignores such items;"
                " the translation sends type work (the default), which Entra processes."
                " Remove the item to keep the old behaviour",
            )
        return block

    def constant(self, block: Block, entry: Entry, key: str) -> None:
        """``type``/``primary``: a constant, written ``{ 'work' }`` / ``{ $true }``."""
        value = entry.value
        text: Any = None
        if isinstance(value, ScriptBlock):
            try:
                text = constant_of(parse_expression(value.tokens, self.label, value.line))
            except UntranslatableError:  # not a constant: reported below
                text = None
        want = bool if key == "primary" else str
        if not isinstance(text, want) or text == "":
            what = "{ $true } or { $false }" if key == "primary" else "{ 'work' }"
            extra = (
                " (a plain value names a column in CSV2SCIM)" if isinstance(value, Literal) else ""
            )
            self.hole(block, entry, f"{key} must be a constant, written {what}{extra}")
            return
        block.entries.append(Item(key, text))

    # --- output --------------------------------------------------------------------------

    def yaml(self, source_name: str) -> str:
        lines = [
            f"# Translated from {source_name} (CSV2SCIM) by `connector import-psd1`.",
            "# Check it against an extract: connector validate --mapping THIS_FILE EXTRACT.csv",
            "version: 1",
            "",
        ]
        if self.external_id is not None:
            lines += [f"externalId: {scalar(self.external_id)}", ""]
        for section, block in (("core", self.core), ("enterprise", self.enterprise)):
            self.section(lines, section, block)
        if self.extensions:
            if any(b.has_items() for b in self.extensions.values()):
                lines.append("extensions:")
            for urn, block in self.extensions.items():
                if block.has_items():
                    lines.append(f"  {scalar(urn)}:")
                    emit(lines, 4, block)
                else:
                    emit(lines, 0, block)
            lines.append("")
        return "\n".join(lines).rstrip("\n") + "\n"

    def section(self, lines: list[str], name: str, block: Block) -> None:
        if not block.entries:
            return
        if block.has_items():
            lines.append(f"{name}:")
            emit(lines, 2, block)
        else:
            emit(lines, 0, block)
        lines.append("")


def _powershell_text(value: bool | int | float) -> str:
    """A non-text literal as PowerShell turns it into a property name."""
    if value is True or value is False:
        return "True" if value else "False"
    return str(value)


def _powershell_source(value: bool | int | float) -> str:
    if value is True or value is False:
        return "$true" if value else "$false"
    return str(value)


def _source(value: Value, text: str) -> str:
    """The source text of a value, for the placeholder comment."""
    if isinstance(value, ScriptBlock):
        return value.source
    if isinstance(value, Literal):
        if value.value is None or isinstance(value.value, str):
            return "$null" if value.value is None else repr(value.value)
        return _powershell_source(value.value)
    if isinstance(value, Expandable):
        return text[value.token.start : value.token.end]
    return "@{ ... }" if isinstance(value, Hashtable) else "@( ... )"


def translate_psd1(
    text: str, label: str = "AttributeMapping.psd1", out_label: str = ""
) -> Translation:
    """Translate psd1 ``text``; raises Psd1Error when it is not a readable data file.

    ``out_label`` names the output file in the loader's problems (default: ``<mapping>``).
    """
    table = parse_psd1(text, label)
    return _finish(_translate(table, text, label), label, out_label)


def import_psd1(path: Path, *, encoding: str | None = None, out_label: str = "") -> Translation:
    """Read and translate a psd1 file (size-capped, never executed); raises Psd1Error."""
    table, text = read_psd1(path, encoding)
    return _finish(_translate(table, text, str(path)), str(path), out_label)


def _translate(table: Hashtable, text: str, label: str) -> _Translator:
    translator = _Translator(label, text)
    translator.top(table)
    return translator


def _finish(translator: _Translator, label: str, out_label: str) -> Translation:
    yaml_text = translator.yaml(Path(label).name)
    try:
        _, problems, warnings = check_mapping(yaml_text)
    except MappingError as exc:  # the output is generated: this means a bug, shown plainly
        problems, warnings = [str(exc)], []
    if out_label:
        problems = [p.replace("<mapping>", out_label, 1) for p in problems]
        warnings = [w.replace("<mapping>", out_label, 1) for w in warnings]
    return Translation(
        yaml=yaml_text,
        translated=translator.translated,
        untranslated=tuple(translator.untranslated),
        notes=tuple(translator.notes),
        problems=tuple(problems),
        warnings=tuple(warnings),
    )
