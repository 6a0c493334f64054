"""Independent check: every generated user is a valid SCIM User with the enterprise extension.

scim2-models requires ``$ref`` on ``manager`` (Entra does not); the check adds a
placeholder to its own copy, never to our output.
"""

from __future__ import annotations

import copy
import io
from typing import Any, Union

import pytest
from scim2_models import URN, Context, EnterpriseUser, Extension, User

from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import Faults, generate_extract

from .helpers import CSV2SCIM_MAPPING, DEFAULT_MAPPING

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class ContosoUser(Extension):
    __schema__ = URN("urn:ietf:params:scim:schemas:extension:contoso:1.0:User")

    hire_date: str | None = None
    leave_date: str | None = None


UserModel = User[Union[EnterpriseUser, ContosoUser]]  # noqa: UP007 - scim2-models needs Union


def _checked_copy(data: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    manager = out.get(ENT, {}).get("manager")
    if manager is not None:
        manager["$ref"] = f"../Users/{manager['value']}"
    return out


@pytest.mark.parametrize(
    ("layout", "mapping"), [("default", DEFAULT_MAPPING), ("csv2scim", CSV2SCIM_MAPPING)]
)
def test_every_generated_user_validates(layout: str, mapping: Any) -> None:
    buf = io.StringIO()
    generate_extract(
        buf, 600, seed=11, layout=layout, faults=Faults(duplicate_upn=True, unresolved_manager=True)
    )  # type: ignore[arg-type]
    compiled = load_mapping(mapping)
    count = 0
    for rec in iter_records(io.BytesIO(buf.getvalue().encode()), compiled):
        user = UserModel.model_validate(
            _checked_copy(rec.data), scim_ctx=Context.RESOURCE_CREATION_REQUEST
        )
        assert user.external_id == rec.external_id
        assert user.active is rec.data["active"]
        assert user[EnterpriseUser].employee_number == rec.external_id
        count += 1
    assert count == 600
