"""A model of how azd turns ``infra/main.parameters.json`` into ARM parameter values.

No azd runs on the build machines, so the tests replay its algorithm. Source:
Azure/azure-dev ``cli/azd/pkg/infra/provisioning/bicep/bicep_provider.go``
(``loadParameters``, ``evalParamEnvSubst``), as changed by PR #6694 ("Fix environment
variable substitution for array and object Bicep parameters", released in azd 1.23.4,
2026-02-09):

1. The parameters file is parsed as JSON *before* any substitution (so it must be valid
   JSON as written; an unquoted ``${VAR}`` is not).
2. A parameter the template declares ``object`` or ``array`` whose value is a string: envsubst
   runs on that string alone and the result is parsed as JSON; a result that is not JSON is an
   error naming the parameter. Empty because of an unset variable: the parameter is omitted
   (azd then prompts for it, or the template default applies).
3. Every other parameter: its JSON text (``{"value": "..."}``) is marshalled again, envsubst
   runs on that *text*, and the result is parsed. The substituted value is pasted in without
   escaping, so a value holding a double quote, a backslash or a newline breaks it. Before
   1.23.4 every parameter took this path.

envsubst is github.com/drone/envsubst; the forms the parameters file uses are ``${NAME}`` and
``${NAME=default}`` (drone also applies the default when the value is empty, and accepts
``:=``, ``-`` and ``:-`` the same way). ``AZURE_PRINCIPAL_ID`` is taken from the signed-in
account, not from the environment. What happens *after* loading (azd converting ``"2048"`` for
an ``int`` parameter, prompting for missing ones) is not modelled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: ``${NAME}`` or ``${NAME<op>default}``; drone/envsubst's identifier characters.
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:=|=|:-|-)([^}]*))?\}")


class AzdParameterError(ValueError):
    """azd would stop with an error while loading the parameters file."""


def envsubst(text: str, env: Mapping[str, str]) -> tuple[str, bool]:
    """(substituted text, whether some variable was unset). Values are inserted verbatim."""
    unset = False

    def one(m: re.Match[str]) -> str:
        nonlocal unset
        name, op, default = m.group(1), m.group(2), m.group(3)
        if name not in env:
            unset = True
        value = env.get(name, "")
        if op is not None and value == "":
            return default
        return value

    return _VAR.sub(one, text), unset


def load_parameters(
    parameters_file_text: str,
    declared_types: Mapping[str, str],
    env: Mapping[str, str],
    *,
    principal_id: str = "00000000-0000-0000-0000-000000000001",
) -> dict[str, Any]:
    """The parameter values azd (>= 1.23.4) would send to ARM, by parameter name."""
    try:
        decoded = json.loads(parameters_file_text)
    except json.JSONDecodeError as exc:
        raise AzdParameterError(f"error unmarshalling Bicep template parameters: {exc}") from exc
    full_env = {**env, "AZURE_PRINCIPAL_ID": principal_id}
    resolved: dict[str, Any] = {}
    for name, param in decoded["parameters"].items():
        kind = declared_types.get(name)
        value = param.get("value")
        if kind in ("object", "array") and isinstance(value, str):
            replaced, unset = envsubst(value, full_env)
            if replaced == "" and unset:
                continue
            try:
                resolved[name] = json.loads(replaced)
            except json.JSONDecodeError as exc:
                raise AzdParameterError(
                    f"substituting parameter '{name}' ({kind}): {exc}: "
                    f"value '{replaced}' is not valid JSON"
                ) from exc
            continue
        replaced, unset = envsubst(json.dumps(param), full_env)
        try:
            out = json.loads(replaced)
        except json.JSONDecodeError as exc:
            raise AzdParameterError(
                f"error unmarshalling Bicep template parameters ({name}): {exc}"
            ) from exc
        if out.get("value") is None:
            continue
        if out["value"] == "" and unset:
            continue
        resolved[name] = out["value"]
    return resolved


def arm_string(value: Any) -> str:
    """ARM's ``string()`` of an object or array: its JSON text, compact.

    Documented ("string" in the ARM template function reference: an object becomes
    ``{"valueA":10,"valueB":"Example Text"}``); the exact spacing is irrelevant here because
    the app parses the text.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
