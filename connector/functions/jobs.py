"""Each source's provisioning-job health, for the timer pass's status and alerts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from connector.config import SourcesConfig
from connector.functions.telemetry import Telemetry
from connector.reconcile import check_job_health
from connector.sync.summary import loggable
from connector.sync.targets import TargetFactory

__all__ = ["check_jobs"]

log = logging.getLogger("connector.functions")


def _brief(exc: BaseException) -> str:
    """An error for the status and logs: type, code, message without emails/UPNs."""
    return loggable(exc, 300)


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """A job as a Graph-shaped dict (the target returns a dict or a pydantic model)."""
    if value is None or isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        out = dump(by_alias=True, mode="json")
        return out if isinstance(out, Mapping) else None
    return None


async def check_jobs(
    config: SourcesConfig, targets: TargetFactory, telemetry: Telemetry
) -> dict[str, dict[str, Any]]:
    """Every source's provisioning-job health (one GET per source).

    A quarantined job raises the ``job_quarantined`` event (the alert); one unreachable
    job is reported as such and does not hide the others.
    """
    result: dict[str, dict[str, Any]] = {}
    for src in config.sources:
        target = targets(src)
        try:
            job = await target.get_job()
            health = check_job_health(_as_mapping(job))
            result[src.name] = {
                "ok": health.ok,
                "code": health.code,
                "reason": health.reason,
                "message": health.message,
            }
            if health.code == "Quarantine":
                telemetry.job_quarantined(source=src.name, reason_code=health.reason or "Unknown")
            elif not health.ok:
                log.warning("source %s: %s", src.name, health.message)
        except Exception as exc:  # one unreachable job must not hide the others
            result[src.name] = {"ok": False, "code": "Unreachable", "message": _brief(exc)}
            log.warning("source %s: job status unavailable (%s)", src.name, type(exc).__name__)
        finally:
            await target.aclose()
    return result
