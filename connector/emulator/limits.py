"""The limits the emulator enforces: bulkUpload calls per sliding window (40 in any 5 s)
and per day (the tenant's daily quota), and provisioning-log reads per sliding window.

One set of windows for the whole emulator, shared by every job and service principal
(the daily quota is "tenant-level"; the scope of the 40/5 s limit is not stated). Sources
and assumptions: docs/emulator.md, *Limits* and *Assumptions: Limits and faults*.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

from connector.clock import Clock
from connector.emulator.config import EmulatorConfig

__all__ = ["Limits"]


class Limits:
    """The sliding windows and the quota day; each check counts the call it lets through."""

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.rate_window: deque[float] = deque()
        self.quota_window: deque[datetime] = deque()
        self.logs_window: deque[float] = deque()

    def check_upload(self) -> tuple[str, float] | None:
        """``None`` when a bulkUpload call may go on (and it is counted), else (which limit,
        seconds until a call is allowed). A throttled call is not counted unless
        ``count_throttled_calls`` (assumption)."""
        cfg = self.config
        mono = self.clock.monotonic()
        if cfg.rate_limit_calls is not None:
            retry = _window_retry(
                self.rate_window, mono, cfg.rate_limit_window_seconds, cfg.rate_limit_calls
            )
            if retry is not None:
                if cfg.count_throttled_calls:
                    self.rate_window.append(mono)
                return "rate", retry
        if cfg.daily_quota is not None:
            now = self.clock.now()
            quota_retry = self._quota_retry(now, cfg.daily_quota)
            if quota_retry is not None:
                return "quota", quota_retry
            self.quota_window.append(now)
        if cfg.rate_limit_calls is not None:
            self.rate_window.append(mono)
        return None

    def _quota_retry(self, now: datetime, quota: int) -> float | None:
        """Seconds until the quota frees a call (at least 1), or None: a rolling 24 h, or
        the UTC day (``quota_window: utc_day``)."""
        qw = self.quota_window
        if self.config.quota_window == "rolling":
            day = timedelta(hours=24)
            while qw and qw[0] <= now - day:
                qw.popleft()
            if len(qw) >= quota:
                return max((qw[len(qw) - quota] + day - now).total_seconds(), 1)
            return None
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while qw and qw[0] < midnight:
            qw.popleft()
        if len(qw) >= quota:
            return max((midnight + timedelta(days=1) - now).total_seconds(), 1)
        return None

    def check_log_read(self) -> float | None:
        """``None`` when a log read may go on (it is counted), else seconds to Retry-After.

        Graph throttling limits, "Identity and access reports service limits": "Five
        requests per 10 seconds" per app per tenant, for auditLogRoot and
        provisioningObjectSummary. Throttled reads are not counted (assumption).
        """
        cfg = self.config
        if cfg.logs_rate_limit_calls is None:
            return None
        mono = self.clock.monotonic()
        retry = _window_retry(
            self.logs_window, mono, cfg.logs_rate_limit_window_seconds, cfg.logs_rate_limit_calls
        )
        if retry is None:
            self.logs_window.append(mono)
        return retry


def _window_retry(window: deque[float], mono: float, seconds: float, calls: int) -> float | None:
    """Drop what left the sliding window; seconds until it has room again, or None if it
    has room now."""
    while window and window[0] <= mono - seconds:
        window.popleft()
    if len(window) >= calls:
        return max(window[len(window) - calls] + seconds - mono, 0.001)
    return None
