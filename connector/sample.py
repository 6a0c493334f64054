"""Realistic, deterministic HR extracts for demos, tests and benchmarks (no real people).

Two layouts: ``default`` (the columns of ``samples/mappings/default.yaml``) and
``csv2scim`` (the 24-column header of Microsoft's CSV2SCIM samples). Every worker id
is unique, every manager id exists and there is exactly one root. Names include
non-ASCII letters; user names and work emails are their ASCII folding and stay unique
(a numeric suffix once name pairs repeat). Memory stays flat: rows are computed from
their index and a seeded ``random.Random``, then written.

Fault injection (for tests and the demo) is opt-in: rows with a wrong field count,
duplicate worker ids, invalid dates, one duplicate user name (a UPN collision Entra
reports) and one manager id that exists nowhere (Entra's unresolved reference).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final, Literal, NamedTuple, TextIO

from connector.transforms import strip_diacritics

__all__ = [
    "CSV2SCIM_COLUMNS",
    "DEFAULT_AS_OF",
    "DEFAULT_COLUMNS",
    "LAYOUTS",
    "Faults",
    "Layout",
    "churn_extract",
    "generate_extract",
]

Layout = Literal["default", "csv2scim"]
LAYOUTS: Final = ("default", "csv2scim")
DEFAULT_AS_OF: Final = date(2026, 1, 5)
DOMAIN: Final = "contoso.com"

DEFAULT_COLUMNS: Final = (
    "EmployeeId",
    "Status",
    "EmploymentType",
    "FirstName",
    "LastName",
    "PreferredName",
    "JobTitle",
    "Department",
    "Division",
    "CostCenter",
    "Company",
    "ManagerId",
    "HireDate",
    "LeaveDate",
    "WorkEmail",
    "WorkPhone",
    "MobilePhone",
    "OfficeStreet",
    "OfficeCity",
    "OfficePostalCode",
    "CountryCode",
    "PreferredLanguage",
)
CSV2SCIM_COLUMNS: Final = (
    "WorkerID",
    "WorkerStatus",
    "WorkerType",
    "UserID",
    "FirstName",
    "LastName",
    "FullName",
    "GenderPronoun",
    "ManagerID",
    "HireDate",
    "OnLeave",
    "Department",
    "Division",
    "CostCenter",
    "Company",
    "Location",
    "JobTitle",
    "StreetAddress",
    "City",
    "CountryCode",
    "OfficePhone",
    "Custom01",
    "Custom02",
    "ZipCode",
)

FIRST_NAMES: Final = (
    "Adele", "Alex", "Amélie", "Ana", "Anders", "Andrés", "Aoife", "Arjun", "Astrid", "Beatriz",
    "Björn", "Camille", "Chloé", "Ciarán", "Dagný", "Daniel", "Dário", "Dorota", "Élodie", "Emil",
    "Emma", "Eszter", "Fatma", "Felipe", "François", "Grace", "Günther", "Hana", "Héctor", "Ingrid",
    "Irène", "Isaac", "Jana", "Jiří", "Joël", "José", "Jürgen", "Kai", "Karolína", "Leila",
    "León", "Liam", "Łukasz", "Maja", "Malgorzata", "María", "Mateo", "Mei", "Mikkel", "Nadia",
    "Noé", "Nuria", "Olga", "Oskar", "Pál", "Priya", "Rafael", "Renée", "Sébastien", "Siobhán",
    "Søren", "Sven", "Tomás", "Ulla", "Vojtěch", "Wiktoria", "Yusuf", "Zoë", "Zsófia", "Øyvind",
)  # fmt: skip
LAST_NAMES: Final = (
    "Abadi", "Álvarez", "Andersen", "Bauer", "Bergström", "Blanc", "Brennan", "Castro", "Çelik",
    "Chen", "Costa", "Dąbrowski", "Dubois", "Dvořák", "Eriksson", "Fernández", "Fischer", "Garcia",
    "Gómez", "Hansen", "Hernández", "Horváth", "Ivanova", "Jensen", "Kováč", "Kowalski",
    "Lefèvre", "Lindqvist", "López", "Martín", "Meyer", "Moreau", "Müller", "Nagy", "Navarro",
    "Nielsen", "Nowak", "Nuñez", "O'Brien", "Okafor", "Olsen", "Pérez", "Petrović", "Quinn",
    "Rossi", "Şahin", "Schmidt", "Šimková", "Sousa", "Søgaard", "Tanaka", "Thérien", "Varga",
    "Vasquez", "Weiß", "Wójcik", "Yılmaz", "Zapata", "Zieliński", "Øvergård",
)  # fmt: skip
DEPARTMENTS: Final = (
    ("Sales", "Commercial", "CC1010"),
    ("Marketing", "Commercial", "CC1020"),
    ("Finance", "Corporate", "CC2010"),
    ("Human Resources", "Corporate", "CC2020"),
    ("Legal", "Corporate", "CC2030"),
    ("Engineering", "Product", "CC3010"),
    ("Product Management", "Product", "CC3020"),
    ("Customer Support", "Operations", "CC4010"),
    ("Logistics", "Operations", "CC4020"),
    ("IT", "Operations", "CC4030"),
)
TITLES: Final = (
    "Analyst", "Specialist", "Engineer", "Senior Engineer", "Consultant", "Coordinator",
    "Account Executive", "Project Manager", "Designer", "Administrator", "Team Lead",
)  # fmt: skip
MANAGER_TITLES: Final = ("Manager", "Senior Manager", "Director")
OFFICES: Final = (
    ("12 Rue de la Paix", "Paris", "75002", "FR", "fr-FR", "+33 1"),
    ("Unter den Linden 5", "Berlin", "10117", "DE", "de-DE", "+49 30"),
    ("Gran Vía 28", "Madrid", "28013", "ES", "es-ES", "+34 91"),
    ("Nørregade 7", "København", "1165", "DK", "da-DK", "+45 33"),
    ("ul. Marszałkowska 104", "Warszawa", "00-017", "PL", "pl-PL", "+48 22"),
    ("1 Microsoft Way", "Redmond", "98052", "US", "en-US", "+1 425"),
    ("Dame Street 40", "Dublin", "D02 X285", "IE", "en-IE", "+353 1"),
    ("Václavské náměstí 1", "Praha", "110 00", "CZ", "cs-CZ", "+420 2"),
)
CSV2SCIM_LOCATIONS: Final = {"US": "North America", "IE": "Europe"}
PRONOUNS: Final = ("SHE/HER", "HE/HIM", "THEY/THEM")
EMPLOYMENT_TYPES: Final = (("Employee", 0.85), ("Contractor", 0.1), ("Intern", 0.05))
_FANOUT: Final = 6
_NAME_PAIRS: Final = len(FIRST_NAMES) * len(LAST_NAMES)
_PAIR_STEP: Final = 1201  # co-prime with the pair count: neighbours get unrelated names


@dataclass(frozen=True, slots=True)
class Faults:
    """Problems to plant in a generated extract (all off by default).

    ``bad_field_count``, ``duplicate_ids`` and ``bad_dates`` are numbers of rows;
    ``duplicate_upn`` copies one worker's user name and email to another worker;
    ``unresolved_manager`` points one row's manager id at an id that does not exist.
    """

    bad_field_count: int = 0
    duplicate_ids: int = 0
    bad_dates: int = 0
    duplicate_upn: bool = False
    unresolved_manager: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.bad_field_count
            or self.duplicate_ids
            or self.bad_dates
            or self.duplicate_upn
            or self.unresolved_manager
        )


def _user_name(first: str, last: str, repeat: int) -> str:
    base = "".join(
        c for c in strip_diacritics(f"{first}.{last}").lower() if c.isalnum() or c in ".-"
    )
    return f"{base}{repeat + 1}" if repeat else base


def _names(i: int) -> tuple[str, str, int]:
    pair = (i * _PAIR_STEP + 7) % _NAME_PAIRS
    return (
        FIRST_NAMES[pair % len(FIRST_NAMES)],
        LAST_NAMES[pair // len(FIRST_NAMES)],
        i // _NAME_PAIRS,
    )


def _manager_index(i: int) -> int | None:
    return None if i == 0 else (i - 1) // _FANOUT


def _is_manager(i: int, rows: int) -> bool:
    return i * _FANOUT + 1 < rows


def _phone(rng: random.Random, prefix: str) -> str:
    return f"{prefix} {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}"


def _default_row(i: int, rows: int, rng: random.Random, as_of: date, id_base: int) -> list[str]:
    first, last, repeat = _names(i)
    user = _user_name(first, last, repeat)
    dept, division, cc = DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
    street, city, postal, country, lang, dial = OFFICES[rng.randrange(len(OFFICES))]
    r = rng.random()
    kind = "Employee" if r < 0.85 else "Contractor" if r < 0.95 else "Intern"
    hire = as_of - timedelta(days=rng.randrange(30, 20 * 365))
    s = rng.random()
    status, leave = "Active", ""
    if i > 0 and not _is_manager(i, rows):
        if s < 0.04:
            status, leave = "Inactive", (as_of - timedelta(days=rng.randrange(1, 25))).isoformat()
        elif s < 0.06:
            status = "On leave"
        elif s < 0.07:
            status, leave = "Active", (as_of + timedelta(days=rng.randrange(5, 60))).isoformat()
    title = (
        "Chief Executive Officer"
        if i == 0
        else f"{dept} {rng.choice(MANAGER_TITLES)}"
        if _is_manager(i, rows)
        else rng.choice(TITLES)
    )
    mgr = _manager_index(i)
    preferred = first if rng.random() < 0.9 else ""
    mobile = _phone(rng, dial) if rng.random() < 0.6 else ""
    return [
        str(id_base + i),
        status,
        kind,
        first,
        last,
        preferred,
        title,
        dept,
        division,
        cc,
        "Contoso Ltd",
        "" if mgr is None else str(id_base + mgr),
        hire.isoformat(),
        leave,
        f"{user}@{DOMAIN}",
        _phone(rng, dial),
        mobile,
        street,
        city,
        postal,
        country,
        lang,
    ]


def _csv2scim_row(i: int, rows: int, rng: random.Random, as_of: date, id_base: int) -> list[str]:
    first, last, _ = _names(i)
    dept, division, cc = DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
    street, city, postal, country, _lang, dial = OFFICES[rng.randrange(len(OFFICES))]
    kind = "Employee" if rng.random() < 0.85 else "Contractor"
    active = i == 0 or _is_manager(i, rows) or rng.random() < 0.93
    hire = as_of - timedelta(days=rng.randrange(30, 20 * 365))
    mgr = _manager_index(i)
    return [
        str(id_base + i),
        "Active" if active else "Inactive",
        kind,
        f"EMP{id_base + i}",
        first,
        last,
        f"{first} {last}",
        rng.choice(PRONOUNS),
        "" if mgr is None else str(id_base + mgr),
        hire.isoformat(),
        "True" if rng.random() < 0.03 else "False",
        dept,
        division,
        cc,
        "Woodgrove",
        CSV2SCIM_LOCATIONS.get(country, "Europe" if country != "US" else "North America"),
        "Chief Executive Officer" if i == 0 else rng.choice(TITLES),
        street if rng.random() < 0.85 else "",
        city,
        country,
        _phone(rng, dial),
        f"T{rng.randrange(1000, 9999)}",
        f"B{rng.randrange(10000, 99999)}" if rng.random() < 0.75 else "",
        postal,
    ]


_ROW_BUILDERS: Final[dict[str, Callable[[int, int, random.Random, date, int], list[str]]]] = {
    "default": _default_row,
    "csv2scim": _csv2scim_row,
}
_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "default": DEFAULT_COLUMNS,
    "csv2scim": CSV2SCIM_COLUMNS,
}
_ID_BASE: Final = {"default": 100001, "csv2scim": 1000}


def _plant_positions(rows: int, faults: Faults, seed: int) -> dict[int, str]:
    """Row index -> fault kind; chosen apart from row 0 (the root) and from each other."""
    wanted = (
        ("field_count", faults.bad_field_count),
        ("duplicate_id", faults.duplicate_ids),
        ("bad_date", faults.bad_dates),
        ("duplicate_upn", int(faults.duplicate_upn)),
        ("unresolved_manager", int(faults.unresolved_manager)),
    )
    total = sum(n for _, n in wanted)
    if total == 0:
        return {}
    if total > rows - 2:
        raise ValueError(f"{total} planted faults do not fit in {rows} rows")
    rng = random.Random(f"faults:{seed}")
    picks = rng.sample(range(2, rows), total)
    out: dict[int, str] = {}
    for kind, n in wanted:
        for _ in range(n):
            out[picks.pop()] = kind
    return out


def _iter_rows(
    rows: int, seed: int, layout: Layout, faults: Faults, as_of: date
) -> Iterator[list[str]]:
    build = _ROW_BUILDERS[layout]
    cols = _COLUMNS[layout]
    id_base = _ID_BASE[layout]
    rng = random.Random(seed)
    planted = _plant_positions(rows, faults, seed) if faults.any else {}
    id_col = 0
    mgr_col = cols.index("ManagerId" if layout == "default" else "ManagerID")
    hire_col = cols.index("HireDate")
    name_cols = [cols.index(c) for c in ("FirstName", "LastName")]
    upn_cols = (
        [cols.index("PreferredName"), cols.index("WorkEmail")]
        if layout == "default"
        else [cols.index("UserID"), cols.index("FullName")]
    )
    for i in range(rows):
        row = build(i, rows, rng, as_of, id_base)
        kind = planted.get(i)
        if kind is not None:
            other = build(i // 2, rows, random.Random(f"{seed}:{i}"), as_of, id_base)
            if kind == "field_count":
                row.append("unexpected")
            elif kind == "duplicate_id":
                row[id_col] = other[id_col]
            elif kind == "bad_date":
                row[hire_col] = f"{as_of.year - 3}-02-30"
            elif kind == "duplicate_upn":
                for c in (*name_cols, *upn_cols):
                    row[c] = other[c]
            elif kind == "unresolved_manager":
                row[mgr_col] = str(id_base + rows + 900000)
        yield row


def _open_out(out: str | Path | TextIO) -> tuple[TextIO, bool]:
    if isinstance(out, str | Path):
        return Path(out).open("w", encoding="utf-8", newline=""), True
    return out, False


def generate_extract(
    out: str | Path | TextIO,
    rows: int,
    seed: int = 0,
    layout: Layout = "default",
    *,
    faults: Faults | None = None,
    as_of: date = DEFAULT_AS_OF,
) -> int:
    """Write an extract of ``rows`` data rows (plus header) to ``out``; return rows written.

    Same arguments, same bytes (UTF-8, no BOM, LF line ends). ``as_of`` anchors hire
    and leave dates.
    """
    if layout not in _ROW_BUILDERS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if rows < 1:
        raise ValueError("rows must be at least 1")
    stream, owned = _open_out(out)
    try:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(_COLUMNS[layout])
        writer.writerows(_iter_rows(rows, seed, layout, faults or Faults(), as_of))
    finally:
        if owned:
            stream.close()
    return rows


class _Previous(NamedTuple):
    """What churn needs from the previous extract: its layout, managers, highest id, rows."""

    layout: Layout
    cols: tuple[str, ...]
    managers: frozenset[str]
    mgr_col: int
    max_id: int
    rows: int


def _read_previous(previous: str | Path) -> _Previous:
    """One pass over the previous extract: its layout (by the header), managers, ids, rows."""
    with Path(previous).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        layout: Layout = "default" if tuple(header) == DEFAULT_COLUMNS else "csv2scim"
        if tuple(header) != _COLUMNS[layout]:
            raise ValueError(f"{previous}: header matches neither layout ({', '.join(LAYOUTS)})")
        cols = _COLUMNS[layout]
        mgr_col = cols.index("ManagerId" if layout == "default" else "ManagerID")
        managers: set[str] = set()
        max_id = 0
        n = 0
        for row in reader:
            if len(row) != len(cols):
                continue
            n += 1
            if row[mgr_col]:
                managers.add(row[mgr_col])
            if row[0].isdigit():
                max_id = max(max_id, int(row[0]))
    return _Previous(layout, cols, frozenset(managers), mgr_col, max_id, n)


def _churned_rows(
    previous: str | Path,
    prev: _Previous,
    third: float,
    rng: random.Random,
    day: date,
    counts: dict[str, int],
) -> Iterator[list[str]]:
    """The previous rows with about ``third`` of them leaving and ``third`` moving; a
    leaver who manages nobody may be removed (not yielded)."""
    cols, status_col = prev.cols, 1
    title_col, dept_col = cols.index("JobTitle"), cols.index("Department")
    div_col, cc_col = cols.index("Division"), cols.index("CostCenter")
    with Path(previous).open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            r = rng.random()
            if len(row) == len(cols) and row[status_col] != "Inactive" and r < third:
                if row[0] in prev.managers or rng.random() < 0.5:
                    row[status_col] = "Inactive"
                    if prev.layout == "default":
                        row[cols.index("LeaveDate")] = day.isoformat()
                    counts["leavers_inactive"] += 1
                else:
                    counts["leavers_removed"] += 1
                    continue
            elif len(row) == len(cols) and r < 2 * third:
                dept, division, cc = DEPARTMENTS[rng.randrange(len(DEPARTMENTS))]
                row[title_col] = rng.choice(TITLES)
                row[dept_col], row[div_col], row[cc_col] = dept, division, cc
                counts["movers"] += 1
            yield row


def _hire_rows(prev: _Previous, hires: int, rng: random.Random, day: date) -> Iterator[list[str]]:
    """``hires`` new rows with ids after the highest, each reporting to an existing manager."""
    cols, n = prev.cols, prev.rows
    build = _ROW_BUILDERS[prev.layout]
    id_base = prev.max_id + 1
    manager_pool = sorted(prev.managers)
    for k in range(hires):
        row = build(n + k, n + hires, rng, day, 0)
        row[0] = str(id_base + k)
        if prev.layout == "csv2scim":
            row[cols.index("UserID")] = f"EMP{id_base + k}"
        else:
            first, last, _ = _names(n + k)
            row[cols.index("WorkEmail")] = f"{_user_name(first, last, 0)}.{id_base + k}@{DOMAIN}"
            row[cols.index("HireDate")] = (day + timedelta(days=rng.randrange(0, 14))).isoformat()
            row[cols.index("LeaveDate")] = ""
            row[1] = "Active"
        row[prev.mgr_col] = rng.choice(manager_pool) if manager_pool else ""
        yield row


def churn_extract(
    previous: str | Path,
    out: str | Path | TextIO,
    churn: float = 0.01,
    seed: int = 0,
    *,
    as_of: date | None = None,
) -> dict[str, int]:
    """Write the next day's extract from ``previous``; return counts of each change.

    About ``churn`` of the rows change, split evenly between leavers (marked inactive
    with a leave date, or removed when they manage nobody), movers (new title,
    department or cost centre) and hires (new ids, reporting to an existing manager).
    Works for both layouts (recognised by the header).
    """
    if not 0.0 <= churn <= 1.0:
        raise ValueError("churn must be between 0 and 1")
    prev = _read_previous(previous)
    day = as_of or DEFAULT_AS_OF + timedelta(days=1)
    rng = random.Random(f"churn:{seed}")
    third = churn / 3
    counts = {"leavers_inactive": 0, "leavers_removed": 0, "movers": 0, "hires": 0}
    stream, owned = _open_out(out)
    try:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(prev.cols)
        writer.writerows(_churned_rows(previous, prev, third, rng, day, counts))
        counts["hires"] = round(prev.rows * third)
        writer.writerows(_hire_rows(prev, counts["hires"], rng, day))
    finally:
        if owned:
            stream.close()
    return counts
