"""CSV2SCIM psd1 → mapping YAML: the sample layout gives the same payloads as the shipped
csv2scim.yaml, every supported scriptblock shape maps rows as PowerShell would, and what
cannot be translated is listed with its line and left as a comment in a loadable file."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import MappingError
from connector.mapping import Mapping, load_mapping
from connector.migrate import import_psd1, translate_psd1
from connector.records import iter_records
from connector.sample import Faults, generate_extract
from connector.scim import build_bulk_requests
from tests.core.helpers import CSV2SCIM_EXTRACT, CSV2SCIM_MAPPING
from tests.migrate.helpers import CONTRACTOR_PSD1, SAMPLE_PSD1, SCRIPTBLOCKS_PSD1, UNSUPPORTED_PSD1


def _bodies(extract: Path, mapping: Mapping) -> tuple[list[bytes], list[tuple[int, str]]]:
    """The exact BulkRequest bodies and the rejected (line, reason) of ``extract``."""
    with iter_records(extract, mapping, label=str(extract)) as records:
        bodies = [payload.body for payload in build_bulk_requests(records.operations())]
    return bodies, [(r.line, r.reason_code) for r in records.rejected]


def test_the_sample_shape_translates_completely_and_cleanly() -> None:
    result = import_psd1(SAMPLE_PSD1)
    assert result.complete
    assert (result.untranslated, result.notes, result.problems) == ((), (), ())
    assert result.warnings == ()
    assert result.translated == 20


@pytest.mark.parametrize("faults", [Faults(), Faults(duplicate_ids=3, bad_field_count=2)])
def test_sample_layout_payloads_are_identical_to_the_shipped_csv2scim_mapping(
    tmp_path: Path, faults: Faults
) -> None:
    extract = tmp_path / "csv2scim.csv"
    generate_extract(extract, 400, seed=7, layout="csv2scim", faults=faults)
    translated = load_mapping(import_psd1(SAMPLE_PSD1).yaml)
    shipped = load_mapping(CSV2SCIM_MAPPING)
    ours, theirs = _bodies(extract, translated), _bodies(extract, shipped)
    assert ours == theirs
    assert len(ours[0]) == 8  # 400 rows, 50 a request
    for extract_file in (CSV2SCIM_EXTRACT,):
        assert _bodies(extract_file, translated) == _bodies(extract_file, shipped)


def test_the_contractor_shape_keys_ignore_case_and_an_untyped_email_is_noted() -> None:
    result = import_psd1(CONTRACTOR_PSD1)
    assert result.complete
    assert len(result.notes) == 1
    assert result.notes[0].startswith(f"{CONTRACTOR_PSD1}:7: this emails item has no type")
    mapping = load_mapping(result.yaml)
    row = {
        "ContractorID": "C-1",
        "Login": "pat@contoso.com",
        "Display Name": "Pat Doe",
        "Status": "TERMINATED",
        "email": "pat@agency.example",
        "Agency # name": "Agency",
        "Sponsor": "E-9",
    }
    user = mapping.apply(row, "C-1")
    assert user["active"] is False  # -ne ignores case
    assert user["emails"] == [{"value": "pat@agency.example", "type": "work"}]
    assert user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "organization": "Agency",
        "manager": {"value": "E-9"},
    }
    assert mapping.apply({**row, "Status": "Active"}, "C-1")["active"] is True


SCRIPTBLOCK_ROW = {
    "WorkerID": "1001",
    "WorkerStatus": "ONLEAVE",
    "FirstName": "Zoë",
    "LastName": "Van Dyke",
    "Job Title": "Engineer",
    "Locale": "en-GB",
    "OfficePhone": "+1 555 0100",
    "Department": "Research",
    "WorkerType": "contractor",
    "Location": "HOME",
}


def test_every_supported_scriptblock_shape_maps_a_row_as_powershell_would() -> None:
    result = import_psd1(SCRIPTBLOCKS_PSD1)
    assert result.complete, [str(u) for u in result.untranslated] + list(result.problems)
    user = load_mapping(result.yaml).apply(SCRIPTBLOCK_ROW, "1001")
    assert user["active"] is True  # 'ONLEAVE' -eq "OnLeave"
    assert user["userName"] == "zoë.van dyke@contoso.com"
    assert user["displayName"] == "Zoë Van Dyke"
    assert user["nickName"] == "Z"
    assert user["title"] == "ENGINEER"
    assert (user["userType"], user["preferredLanguage"], user["locale"]) == (
        "Employee",
        "en-US",
        "en-GB",
    )
    assert user["name"] == {
        "givenName": "Zoë",
        "familyName": "Van Dyke",
        "formatted": "Van Dyke, Zoë",
    }
    assert user["phoneNumbers"] == [{"value": "+1 555 0100", "type": "work", "primary": True}]
    enterprise = user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert enterprise == {"department": "Research", "division": "R&D {core}"}
    custom = user["urn:ietf:params:scim:schemas:extension:contoso:1.0:User"]
    # -ceq is case-sensitive; -not (-eq 'Intern'); -ne -and -ne ignore case
    assert custom == {"IsContractor": False, "NotIntern": True, "Onsite": False}


def test_translated_scriptblocks_carry_their_source_as_a_comment() -> None:
    yaml_text = import_psd1(SAMPLE_PSD1).yaml
    assert "  active:  # psd1 line 11: { $_.'WorkerStatus' -eq 'Active' }\n" in yaml_text
    assert "    transforms: [lower, {equals: active}]\n" in yaml_text


def test_untranslatable_entries_are_listed_with_lines_and_left_as_comments() -> None:
    result = import_psd1(UNSUPPORTED_PSD1)
    assert not result.complete
    listed = [(u.line, u.key) for u in result.untranslated]
    assert listed == [
        (4, "active"),
        (5, "title"),
        (6, "displayName"),
        (7, "nickName"),
        (8, "locale"),
        (9, "timezone"),
        (10, "ims"),
        (11, "profileUrl"),
        (13, "type"),
    ]
    assert str(result.untranslated[0]) == (
        f"{UNSUPPORTED_PSD1}:4: active: not translated:"
        " if statements have no equivalent in the mapping language"
    )
    for u in result.untranslated:
        assert f"# TODO psd1 line {u.line}: not translated: " in result.yaml
    assert "#   title = { $_.JobTitle -replace 'Sr\\.', 'Senior' }" in result.yaml
    # with active untranslated the loader refuses the output: every record must carry it
    assert [p.split(": every record")[0] for p in result.problems] == [
        "<mapping>:3: active is not mapped"
    ]
    with pytest.raises(MappingError, match="issue #16"):
        load_mapping(result.yaml)


def test_the_loader_checks_the_output_and_its_problems_name_the_output_file() -> None:
    text = "@{ userName = 'UserID'; active = { $true } }"
    result = translate_psd1(text, "m.psd1", out_label="out.yaml")
    assert not result.complete
    assert result.untranslated == ()
    assert result.problems == (
        "out.yaml:3: externalId is required: the column holding the worker's unique id",
    )


def test_custom_names_the_loader_refuses_are_its_problems_with_output_lines() -> None:
    text = "@{ externalId = 'Id'; 'urn:x:1.0:User' = @{ 'Bad-Name' = 'C'; '{x}' = 'D' } }"
    result = translate_psd1(text, "m.psd1")
    assert [p.split(" must ")[0] for p in result.problems if "custom" in p] == [
        "<mapping>:9: custom attribute name 'Bad-Name'",
        "<mapping>:10: custom attribute name '{x}'",
    ]
    assert result.yaml.splitlines()[8:10] == ["    Bad-Name: C", '    "{x}": D']


@pytest.mark.parametrize(
    ("psd1_value", "reason"),
    [
        ("{ $_.A -eq $_.B }", "between a column and a literal only"),
        ("{ $_.A -eq '' }", "empty: true"),
        ("{ $_.A -eq 'x' -and $_.A -eq 'y' }", "only -or of -eq tests and -and of -ne"),
        ("{ $_.A -eq 'x' -or $_.A -ceq 'y' }", "mixes case-sensitive"),
        ("{ 1 + $_.A }", "adds, it does not join text"),
        ("{ $_.A.Substring(1, 2) }", "Substring(0, n)"),
        ("{ ($_.A -eq 'x').ToLower() }", "on a true/false value"),
        ("{ 'x'.ToLower() }", "a method on a constant"),
        ("{ $_.'{A}' }", "cannot be used in a mapping"),
        ("{ -not $_.A }", "need comparisons"),
        ('"$($_.A)"', "outside a scriptblock"),
        ("''", "an empty column name"),
        ("$null", "$null: leave the attribute out"),
        ("@{ a = 1 }", "a hashtable where a single value is expected"),
    ],
)
def test_each_untranslatable_value_names_its_reason(psd1_value: str, reason: str) -> None:
    result = translate_psd1(f"@{{\n externalId = 'Id'\n title = {psd1_value}\n}}", "m.psd1")
    assert [(u.line, u.key) for u in result.untranslated] == [(3, "title")]
    assert reason in result.untranslated[0].reason


def test_constants_in_scriptblocks_and_the_enterprise_attribute_outside_its_urn() -> None:
    text = (
        "@{ externalId = 'Id'; active = { $true }; userName = { 'u' + 1 }; title = { 42 }\n"
        "department = 'Dept'; schemas = @('x') }"
    )
    result = translate_psd1(text, "m.psd1")
    assert result.complete
    user = load_mapping(result.yaml).apply({"Id": "1", "Dept": "Sales"}, "1")
    assert (user["active"], user["userName"], user["title"]) == (True, "u1", "42")
    assert user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "department": "Sales"
    }
    assert [n.split(": ", 1)[1][:30] for n in result.notes] == [
        "department is an enterprise at",
        "schemas is left out: the conne",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            "$true",
            "a plain True names a column in CSV2SCIM (it reads the column 'True'); write { $true }",
        ),
        ("7", "a plain 7 names a column in CSV2SCIM (it reads the column '7'); write { 7 }"),
    ],
)
def test_a_plain_non_text_value_is_a_column_name_in_csv2scim_so_it_is_not_guessed(
    value: str, reason: str
) -> None:
    result = translate_psd1(f"@{{ externalId = 'Id'; active = {value} }}", "m.psd1")
    assert [u.reason for u in result.untranslated] == [reason + " for a constant"]
    assert f"#   active = {value}" in result.yaml


def test_type_and_primary_must_be_scriptblock_constants() -> None:
    text = "@{ externalId = 'Id'; emails = @( @{ value = 'E'; type = 'work'; primary = $true } ) }"
    result = translate_psd1(text, "m.psd1")
    assert [u.reason for u in result.untranslated] == [
        "type must be a constant, written { 'work' } (a plain value names a column in CSV2SCIM)",
        "primary must be a constant, written { $true } or { $false } (a plain value names a"
        " column in CSV2SCIM)",
    ]


def test_psd1_text_lands_in_the_yaml_only_quoted_or_in_comments() -> None:
    text = (
        "@{ externalId = 'Id'; active = { $true }; title = 'a: b\n#c'\n"
        " 'nick\nName: x' = 'Y'\n"
        " displayName = { $_.'q\"z' + ' -- #' } }"
    )
    result = translate_psd1(text, "m.psd1")
    assert result.problems == ()
    mapping = load_mapping(result.yaml)
    assert set(mapping.required_columns) == {"Id", "a: b\n#c", 'q"z'}
    # the unknown key with a line break stays inside one comment line
    assert "#   nick Name: x = 'Y'" in result.yaml
    user = mapping.apply({"Id": "1", "a: b\n#c": "T", 'q"z': "D"}, "1")
    assert (user["title"], user["displayName"]) == ("T", "D -- #")


@pytest.mark.parametrize(
    ("scriptblock", "expected"),
    [
        ("{ ($_.A + '-') + $_.B }", "x-y"),
        ('{ "$($_.A)" }', "x"),
        ("{ $_.A + '' }", "x"),
        ('{ "{$($_.A)}" }', "{x}"),
        ("{ $_.A + 1 }", "x1"),
        ("{ $_.A + $null + $true }", "xTrue"),
    ],
)
def test_concatenations_map_a_row_as_powershell_joins_text(scriptblock: str, expected: str) -> None:
    text = f"@{{ externalId = 'Id'; active = {{ $true }}; title = {scriptblock} }}"
    result = translate_psd1(text, "m.psd1")
    assert result.complete
    user = load_mapping(result.yaml).apply({"Id": "1", "A": "x", "B": "y"}, "1")
    assert user["title"] == expected
