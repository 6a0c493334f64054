"""Emulator settings: one pydantic model, loadable from YAML/JSON or built in code.

Every knob exists because Microsoft's documentation is silent or contradictory on
that behaviour; ``docs/emulator.md`` lists which default is documented and which is
our assumption.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connector.errors import ConfigError

__all__ = [
    "BUCKET_FULL_MESSAGE",
    "DEFAULT_BUCKET_SIZE",
    "DEFAULT_DAILY_QUOTA",
    "EmulatorConfig",
    "JobConfig",
    "load_config",
    "make_job_id",
    "on_premises_job",
]

DEFAULT_DAILY_QUOTA = 2000
"""Documented tenant limit for Entra ID P1/P2 (Governance: 6,000)."""

DEFAULT_BUCKET_SIZE = 100_000
"""Operations a job may hold unprocessed; the real size is undocumented (assumption)."""

BUCKET_FULL_MESSAGE = (
    "The bucket that stores the ingested data is full, please wait for the synchronization"
    " service to process the ingested data and retry this request."
)
"""Verbatim from Microsoft's known-issues page for inbound provisioning."""

JobState = Literal["Active", "Paused", "Quarantine", "NotRun", "NotConfigured"]


def make_job_id(template: str = "API2AAD") -> str:
    """A job id shaped like Entra's: ``API2AAD.<32 hex>.<guid>``."""
    return f"{template}.{uuid.uuid4().hex}.{uuid.uuid4()}"


class JobConfig(BaseModel):
    """One provisioning job of one service principal (the app's object id)."""

    model_config = ConfigDict(extra="forbid")

    service_principal_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    job_id: str = Field(default_factory=make_job_id)
    display_name: str = "API-driven provisioning to Microsoft Entra ID"
    state: JobState = "Active"
    verified_domains: list[str] | None = Field(
        default=None, description="Overrides EmulatorConfig.verified_domains for this job."
    )
    agent_active: bool = Field(
        default=True,
        description="On-premises AD jobs (API2AD.…): whether the provisioning agent is active;"
        " while it is not, uploads queue and nothing is processed.",
    )

    @field_validator("job_id")
    @classmethod
    def _job_id_shape(cls, value: str) -> str:
        if not value or "/" in value or " " in value:
            raise ValueError(f"job id {value!r} must be non-empty without '/' or spaces")
        return value


def on_premises_job(**fields: object) -> JobConfig:
    """A job of the gallery app "API-driven provisioning to on-premises Active Directory":
    job id ``API2AD.<32 hex>.<guid>`` (the shape in Microsoft's Logic Apps sample; the
    template id itself is not documented)."""
    values: dict[str, object] = {
        "job_id": make_job_id("API2AD"),
        "display_name": "API-driven provisioning to on-premises Active Directory",
    }
    values.update(fields)
    return JobConfig.model_validate(values)


class EmulatorConfig(BaseModel):
    """Everything the emulator can be told; defaults are the documented service or cautious."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[str] = Field(
        default_factory=lambda: [secrets.token_urlsafe(24)],
        description="Bearer tokens accepted with every permission.",
    )
    tokens_without_upload_role: list[str] = Field(
        default_factory=list,
        description="Accepted tokens lacking SynchronizationData-User.Upload: bulkUpload -> 403.",
    )
    tokens_without_job_roles: list[str] = Field(
        default_factory=list,
        description="Accepted tokens lacking Synchronization.Read(Write).All: the job and"
        " schema APIs answer 403.",
    )
    expired_tokens: list[str] = Field(
        default_factory=list, description="Tokens answered 401 'expired or not yet valid'."
    )
    tenant_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    jobs: list[JobConfig] = Field(default_factory=lambda: [JobConfig()], min_length=1)
    verified_domains: list[str] = Field(default_factory=lambda: ["contoso.com"])

    log_delay_seconds: float = Field(default=0.0, ge=0)
    logs_page_size: int = Field(default=100, ge=1, description="Page size without $top.")
    logs_max_top: int = Field(default=1000, ge=1, description="$top above this is clamped.")
    logs_rate_limit_calls: int | None = Field(
        default=5,
        ge=1,
        description="Reads of /auditLogs/provisioning allowed per window (Graph throttling"
        " limits, identity and access reports: 'Five requests per 10 seconds'); None = off.",
    )
    logs_rate_limit_window_seconds: float = Field(default=10.0, gt=0)

    daily_quota: int | None = Field(default=DEFAULT_DAILY_QUOTA, ge=1)
    quota_window: Literal["rolling", "utc_day"] = "rolling"
    rate_limit_calls: int | None = Field(default=40, ge=1)
    rate_limit_window_seconds: float = Field(default=5.0, gt=0)
    count_throttled_calls: bool = Field(
        default=False, description="Whether a call answered 429 also fills the 5-second window."
    )
    retry_after: bool = Field(default=True, description="Send Retry-After on 429.")

    bucket_size: int | None = Field(default=DEFAULT_BUCKET_SIZE, ge=1)
    cycle_max_operations: int = Field(
        default=10_000, ge=1, description="Operations one processing cycle takes from the bucket."
    )
    new_user_enabled_without_active: bool = Field(
        default=False, description="accountEnabled of a user created from a record without active."
    )
    disable_on_update_without_active: bool = Field(
        default=True,
        description="An update (a record for an existing user) that omits active disables"
        " the user (AzureAD/entra-id-inbound-provisioning issue #16; a user's report).",
    )
    clear_omitted_flow_null_attributes: bool = Field(
        default=True, description="With flowNullValues, an omitted attribute is cleared too."
    )
    auto_resolve_references: bool = Field(
        default=False,
        description="Re-resolve skipped manager references when the manager appears,"
        " without the referencing record being sent again.",
    )

    fault_rate: float = Field(default=0.0, ge=0, le=1, description="Share answered 500/503.")
    drop_before_rate: float = Field(default=0.0, ge=0, le=1)
    drop_after_rate: float = Field(default=0.0, ge=0, le=1)
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)
    seed: int = 0

    gc_freeze: bool = Field(
        default=False,
        description="Call gc.freeze() after each processing cycle. It affects the whole host"
        " process, so only a process that is nothing but the emulator (the CLI, the"
        " benchmark) should turn it on.",
    )

    @model_validator(mode="after")
    def _check(self) -> EmulatorConfig:
        if not self.tokens:
            raise ValueError("tokens: at least one accepted token is needed")
        if self.fault_rate + self.drop_before_rate + self.drop_after_rate > 1:
            raise ValueError("fault_rate + drop_before_rate + drop_after_rate must be <= 1")
        seen: set[str] = set()
        for job in self.jobs:
            if job.job_id in seen:
                raise ValueError(f"jobs: job id {job.job_id} is listed twice")
            seen.add(job.job_id)
        self.verified_domains = [d.lower() for d in self.verified_domains]
        return self

    @property
    def default_job(self) -> JobConfig:
        return self.jobs[0]


def load_config(path: Path) -> EmulatorConfig:
    """Read an emulator config file (YAML or JSON); errors name the file and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read emulator config {path}: {exc}") from exc
    try:
        raw = orjson.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"emulator config {path} is not valid YAML/JSON: {exc}") from exc
    try:
        return EmulatorConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"emulator config {path} is invalid: {problems}") from exc
