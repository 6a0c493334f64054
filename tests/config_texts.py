"""Sources config texts shared by the config tests."""

from __future__ import annotations

ENDPOINT = (
    "https://graph.microsoft.com/beta/servicePrincipals/11111111-2222-3333-4444-555555555555"
    "/synchronization/jobs/API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555"
    "/bulkUpload"
)


CONFIG = f"""\
daily_call_budget: 6000
reconciliation:
  deadline: 90m
  skew: 2m
sources:
  - name: employees
    match: employees/
    mapping: mappings/employees.yaml
    endpoint: {ENDPOINT}
    thresholds:
      max_leavers: 100
    ignore_attributes: [extractedAt]
    extract_timestamp:
      pattern: '_(?P<ts>\\d{{8}}T\\d{{6}})\\.csv$'
      format: '%Y%m%dT%H%M%S'
  - name: contractors
    match: {{prefix: vendors/, glob: 'vendors/*.csv'}}
    mapping:
      externalId: ContractorId
    service_principal_id: 11111111-2222-3333-4444-555555555555
    job_id: API2AD.x.y
    cloud: usgov
    mode: delta
    leavers: ignore
    retry_unconfirmed: true
"""


IDS = (
    "    service_principal_id: 11111111-2222-3333-4444-555555555555\n"
    "    job_id: API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555\n"
)


def with_ids(cloud: str | None) -> str:
    text = "sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n" + IDS
    return text + (f"    cloud: {cloud}\n" if cloud is not None else "")
