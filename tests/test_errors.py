"""Every exception the connector defines lives in ``connector/errors.py``, under ``ConnectorError``.

Arguments a programmer passes wrongly may stay ``ValueError``; domain errors may not.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import connector
import connector.errors as errors


def _package_modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(connector.__path__, "connector.")
        if not m.name.startswith("connector.cli")  # Typer app: imports optional extras
    ] + ["connector.cli.app"]


def test_every_exception_class_is_defined_in_errors() -> None:
    strays = []
    for name in _package_modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == name
                and name != "connector.errors"
            ):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_every_error_descends_from_connector_error_and_is_drawn() -> None:
    drawn = set(re.findall(r"(\w+Error)\b", errors.__doc__ or ""))
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.ConnectorError), name
        assert not issubclass(cls, ValueError), name
        assert name in drawn, f"{name} is missing from the tree in errors.py's docstring"
