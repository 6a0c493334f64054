"""How fast could ``preview`` map and serialise a row at best, against the plain converter?

``connector preview`` on the default mapping runs at about 0.6 of the plain converter's
speed (``bench_preview.py``: ``csv.DictReader``, a dict of the mapping's columns per row,
``orjson.dumps`` per 50 rows). This benchmark splits a row's CPU time in process, on rows
read beforehand, so each part is measured alone (best of ``--rounds``):

- **read**: the extract reader's data pass (every check) against ``csv.DictReader``;
- **map + serialise**: the record builder (nested dicts) and ``orjson.dumps`` of the
  bulk operation, as the record stream does, against the converter's dict of columns and
  its share of ``orjson.dumps`` per 50 rows;
- **floor**: a writer spelled out by hand for ``samples/mappings/default.yaml`` alone,
  doing the least a Python writer can: one check of the row for characters JSON escapes,
  the mapping's transforms (the product's own ``lower``, lookup and date functions with
  their memos), one f-string for the whole operation (keys and containers as literal text,
  an optional attribute as two conditional pieces) and ``str.encode``. It is checked byte
  for byte against the product's operations on every row before it is timed, so it does
  all the work; a generated writer for any mapping would cost more (container
  bookkeeping, a call per value it cannot prove plain).

If even the floor plus the reader costs more than the converter, no writer of the SCIM
user in Python brings ``preview`` level with the converter. Prints microseconds of CPU
per row.

    python benchmarks/bench_preview_floor.py [--rows 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.extract import ExtractReader  # noqa: E402
from connector.mapping import Mapping, load_mapping  # noqa: E402
from connector.records import iter_records  # noqa: E402
from connector.sample import generate_extract  # noqa: E402
from connector.scim import SerializedOperation  # noqa: E402
from connector.transforms import make_transform  # noqa: E402

MAPPING = ROOT / "samples" / "mappings" / "default.yaml"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CONTOSO = "urn:ietf:params:scim:schemas:extension:contoso:1.0:User"
SCHEMAS = orjson.dumps([CORE, ENTERPRISE, CONTOSO]).decode()

Row = tuple[list[str], str, str]  # values, externalId, bulkId


def floor_writer(columns: list[str]) -> Callable[[list[str], str, str], str | None]:
    """The default mapping's operation as one f-string (see the module docstring)."""
    at = {c: i for i, c in enumerate(columns)}
    status = make_transform(
        "lookup",
        {
            "table": {"Active": True, "On leave": True, "Inactive": False, "Terminated": False},
            "ignore_case": True,
        },
    ).on_text
    day = make_transform("date", {"formats": ["%Y-%m-%d", "%d/%m/%Y"], "timezone": "UTC"})
    assert status is not None
    assert day.on_text is not None
    assert day.memo is not None
    parse, memo = day.on_text, day.memo
    e, st, ty, fi, la, pr = (
        at[c]
        for c in (
            "EmployeeId",
            "Status",
            "EmploymentType",
            "FirstName",
            "LastName",
            "PreferredName",
        )
    )
    jt, de, dv, cc, co, mg = (
        at[c] for c in ("JobTitle", "Department", "Division", "CostCenter", "Company", "ManagerId")
    )
    hd, ld, we, wp, os_, oc = (
        at[c]
        for c in ("HireDate", "LeaveDate", "WorkEmail", "WorkPhone", "OfficeStreet", "OfficeCity")
    )
    op, cn, pl = (at[c] for c in ("OfficePostalCode", "CountryCode", "PreferredLanguage"))
    nick, mgr, leave, q, nothing = (
        ',"nickName":"',
        ',"manager":{"value":"',
        ',"LeaveDate":"',
        '"',
        "",
    )
    mgr_end = '"}'

    def write(v: list[str], ext: str, bid: str) -> str | None:
        j = "".join(v)
        if '"' in j or "\\" in j or "\t" in j or "\n" in j or "\r" in j:
            return None
        email = v[we].lower()
        first, last, pref, boss = v[fi], v[la], v[pr], v[mg]
        shown = f"{pref} {last}" if pref else f"{first} {last}"
        active = "true" if status(v[st]) else "false"
        hired = memo.get(v[hd]) or parse(v[hd])
        left = v[ld]
        if left:
            left = memo.get(left) or parse(left)
        return (
            f'{{"method":"POST","bulkId":"{bid}","path":"/Users","data":{{"schemas":{SCHEMAS},'
            f'"externalId":"{ext}","userName":"{email}","name":{{"givenName":"{first}",'
            f'"familyName":"{last}"}},"displayName":"{shown}"'
            f"{nick if pref else nothing}{pref}{q if pref else nothing}"
            f',"title":"{v[jt]}","userType":"{v[ty]}","preferredLanguage":"{v[pl]}",'
            f'"active":{active},"emails":[{{"value":"{email}","type":"work","primary":true}}],'
            f'"phoneNumbers":[{{"value":"{v[wp]}","type":"work"}}],"addresses":[{{'
            f'"streetAddress":"{v[os_]}","locality":"{v[oc]}","postalCode":"{v[op]}",'
            f'"country":"{v[cn]}","type":"work"}}],"{ENTERPRISE}":{{"employeeNumber":"{v[e]}",'
            f'"department":"{v[de]}","division":"{v[dv]}","costCenter":"{v[cc]}",'
            f'"organization":"{v[co]}"{mgr if boss else nothing}{boss}'
            f'{mgr_end if boss else nothing}}},"{CONTOSO}":{{"HireDate":"{hired}"'
            f"{leave if left else nothing}{left}{q if left else nothing}}}}}}}"
        )

    return write


def _rows(path: Path, mapping: Mapping) -> tuple[list[Row], list[str]]:
    reader = ExtractReader(path, mapping.extract_profile)
    columns = reader.selected_columns(mapping.required_columns)
    e = columns.index(mapping.external_id_column)
    rows = reader.iter_mapped(
        lambda line, v: (list(v), v[e], f"{v[e]}:L{line}"),
        columns=mapping.required_columns,
        as_list=True,
    )
    return list(rows), columns


def _best(work: Callable[[], object], rounds: int, n: int) -> float:
    """Microseconds of CPU per row, the best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        work()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def _measure(path: Path, rounds: int) -> dict[str, float]:
    mapping = load_mapping(MAPPING)
    rows, columns = _rows(path, mapping)
    n = len(rows)
    apply = mapping.bind(columns)
    write = floor_writer(columns)
    with iter_records(path, mapping) as stream:
        product = [op.json for op in stream.operations() if isinstance(op, SerializedOperation)]
    assert len(product) == n
    for (values, ext, bid), want in zip(rows, product, strict=True):
        got = write(values, ext, bid)
        if got is None or got.encode() != want:
            raise SystemExit(f"the floor writer differs from the product at {bid}: {got}")
    dict_rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    wanted = mapping.required_columns
    envelope: dict[str, Any] = {"method": "POST", "bulkId": "", "path": "/Users", "data": None}
    dumps = orjson.dumps

    def read() -> None:
        reader = ExtractReader(path, mapping.extract_profile)
        for _ in reader.iter_mapped(lambda line, v: v, columns=wanted, as_list=True):
            pass

    def dict_reader() -> None:
        with path.open(encoding="utf-8", newline="") as f:
            for _ in csv.DictReader(f):
                pass

    def mapped() -> None:
        for values, ext, bid in rows:
            envelope["bulkId"] = bid
            envelope["data"] = apply(values, ext)
            dumps(envelope)

    def floor() -> None:
        for values, ext, bid in rows:
            write(values, ext, bid).encode()  # type: ignore[union-attr]

    def converter() -> None:
        batch = []
        for row in dict_rows:
            batch.append({c: row[c] for c in wanted})
            if len(batch) == 50:
                dumps({"Operations": batch})
                batch = []

    parts = {
        "read (product reader)": read,
        "read (csv.DictReader)": dict_reader,
        "map + serialise (product)": mapped,
        "map + serialise (floor)": floor,
        "dict + dumps/50 (converter)": converter,
    }
    return {name: _best(work, rounds, n) for name, work in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        path = Path(tmp) / "extract.csv"
        generate_extract(path, args.rows, seed=3, layout="default")
        figures = _measure(path, args.rounds)
    for name, us in figures.items():
        print(f"{name:30s} {us:6.2f} µs/row")
    product = figures["read (product reader)"] + figures["map + serialise (product)"]
    floor = figures["read (product reader)"] + figures["map + serialise (floor)"]
    plain = figures["read (csv.DictReader)"] + figures["dict + dumps/50 (converter)"]
    print(
        f"read + map + serialise: product {product:.2f}, floor {floor:.2f}, converter {plain:.2f}"
    )
    print(f"speed against the converter: product {plain / product:.2f}, floor {plain / floor:.2f}")


if __name__ == "__main__":
    main()
