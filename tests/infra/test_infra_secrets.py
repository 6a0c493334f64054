"""No secrets or keys in parameters, outputs or templates."""

from __future__ import annotations

import json
import re

import bicep_model as bm
from infra_contract import INFRA

SECRET_NAME = re.compile(r"secret|password|passwd|key|token|connectionstring|sas|credential", re.I)
SECRET_VALUE = re.compile(
    r"list\w*\(|ConnectionString|InstrumentationKey|primaryKey|secondaryKey|systemKeys", re.I
)


def test_no_secure_parameters() -> None:
    for path in bm.bicep_files():
        for name, param in bm.parse(path).get("parameters", {}).items():
            kinds = {d["type"] for d in param["decorators"]}
            assert "secure" not in kinds, f"{path.name}:{name} is @secure"
        assert "@secure" not in path.read_text(), path.name


def test_no_secret_like_parameter_or_output_names() -> None:
    for path in bm.bicep_files():
        doc = bm.parse(path)
        for name in list(doc.get("parameters", {})) + list(doc.get("outputs", {})):
            assert not SECRET_NAME.search(name), f"{path.name}: {name}"
    params_file = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    for name in params_file:
        assert not SECRET_NAME.search(name), name


def test_outputs_carry_no_keys_or_connection_strings() -> None:
    for path in bm.bicep_files():
        for name, output in bm.parse(path).get("outputs", {}).items():
            rendered = bm.render(output["value"])
            assert not SECRET_VALUE.search(rendered), f"{path.name}:{name} = {rendered}"


def test_no_key_listing_functions_anywhere() -> None:
    for path in bm.bicep_files():
        code = bm.code_without_comments(path)
        assert not re.search(r"\blist(Keys|Secrets|AccountSas|ServiceSas|\w*)\(", code), path.name
