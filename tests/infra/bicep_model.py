"""Small helpers over pycep-parser's JSON for the Bicep files in infra/.

pycep (0.7.1) turns a file into plain dicts: literals stay literals, identifiers become bare
strings, and expressions become ``{"operator": ...}`` / ``{"function": ...}`` trees. The
helpers here unwrap loops and conditions and render expressions back to short Bicep-like
text, so tests can compare ``storage.properties.primaryEndpoints.blob`` as a string.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from infra_contract import INFRA
from pycep import BicepParser


@cache
def parse(path: Path) -> dict[str, Any]:
    """Parse one .bicep file (cached: the templates do not change during a test run)."""
    result: dict[str, Any] = BicepParser().parse(file_path=path)
    return result


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def module_path(name: str) -> Path:
    return INFRA / "modules" / name


@dataclass(frozen=True)
class Resource:
    file: Path
    symbol: str
    type: str
    api_version: str
    existing: bool
    body: dict[str, Any]
    condition: Any
    looped: bool


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    """(body, condition, looped) of a resource or module config (loops/conditions removed)."""
    condition = None
    looped = False
    while (
        isinstance(config, dict)
        and "config" in config
        and ("loop_type" in config or "condition" in config)
    ):
        looped = looped or "loop_type" in config
        condition = config.get("condition") or condition
        config = config["config"]
    return config, condition, looped


def resources(path: Path) -> list[Resource]:
    doc = parse(path)
    out = []
    for symbol, res in doc.get("resources", {}).items():
        body, condition, looped = unwrap(res["config"])
        out.append(
            Resource(
                file=path,
                symbol=symbol,
                type=res["type"],
                api_version=res["api_version"],
                existing=bool(res.get("existing")),
                body=body,
                condition=condition,
                looped=looped,
            )
        )
    return out


def all_resources() -> Iterator[Resource]:
    for path in bicep_files():
        yield from resources(path)


def resources_of_type(path: Path, type_: str, *, existing: bool = False) -> list[Resource]:
    return [r for r in resources(path) if r.type == type_ and r.existing == existing]


def one(path: Path, type_: str) -> Resource:
    found = resources_of_type(path, type_)
    assert len(found) == 1, f"{path.name}: expected one {type_}, found {len(found)}"
    return found[0]


def module(path: Path, symbol: str) -> tuple[dict[str, Any], Any]:
    """(body, condition) of a module declaration."""
    body, condition, _ = unwrap(parse(path)["modules"][symbol]["config"])
    return body, condition


def render(node: Any) -> str:
    """Render a pycep expression back to compact Bicep-like text."""
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return "null"
    if isinstance(node, int | float):
        return str(node)
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "[" + ", ".join(render(n) for n in node) + "]"
    if isinstance(node, dict):
        if "operator" in node:
            op = node["operator"]
            kind = op["type"]
            operands = op.get("operands", {})
            if kind == "property_accessor":
                return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
            if kind == "index_accessor":
                return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
            if kind == "not":
                return "!" + render(operands.get("bool_value", operands))
            parts = [render(v) for v in operands.values()]
            return f"{kind}(" + ", ".join(parts) + ")"
        if "function" in node:
            fn = node["function"]
            params = fn.get("parameters") or {}
            args = [render(v) for v in params.values()]
            return f"{fn['type']}(" + ", ".join(args) + ")"
        return "{" + ", ".join(f"{k}: {render(v)}" for k, v in node.items()) + "}"
    raise TypeError(f"unexpected node {node!r}")


def literal_app_settings(site_body: dict[str, Any]) -> list[dict[str, Any]]:
    """The literal app settings of a site: ``appSettings`` is ``concat([...], <variable>)``.

    The variable (the Key Vault references, built by a for-expression) is checked on its own.
    """
    node = site_body["properties"]["siteConfig"]["appSettings"]
    if isinstance(node, list):
        return node
    fn = node["function"]
    assert fn["type"] == "concat", f"appSettings is {render(node)}"
    lists = [arg for arg in fn["parameters"].values() if isinstance(arg, list)]
    assert len(lists) == 1, f"appSettings is {render(node)}"
    return lists[0]


def param_default(path: Path, name: str) -> Any:
    return parse(path)["parameters"][name]["default"]


def param_decorators(path: Path, name: str) -> dict[str, Any]:
    """Decorators of a parameter as {type: argument}."""
    return {d["type"]: d.get("argument") for d in parse(path)["parameters"][name]["decorators"]}


def variable(path: Path, name: str) -> Any:
    return parse(path)["variables"][name]["value"]


def code_without_comments(path: Path) -> str:
    """The file's text with // line comments removed (URLs inside strings are kept)."""
    return "\n".join(re.sub(r"(^|\s)//.*$", "", line) for line in path.read_text().splitlines())
