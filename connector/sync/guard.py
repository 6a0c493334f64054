"""The mass-change guard: whether a plan may be sent or must wait for an operator.

Pure: :func:`check_guard` compares a :class:`~connector.sync.delta.DeltaPlan`'s counts
with the source's thresholds and returns a :class:`HoldReason` (every limit exceeded,
with its numbers) or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from connector.sync.delta import DeltaPlan

__all__ = ["GuardThresholds", "GuardViolation", "HoldReason", "check_guard"]


class GuardThresholds(Protocol):
    """The guard's limits (:class:`connector.config_source.Thresholds` has this shape)."""

    @property
    def max_leavers(self) -> int | None: ...

    @property
    def max_leavers_percent(self) -> float | None: ...

    @property
    def max_changes(self) -> int | None: ...

    @property
    def max_changes_percent(self) -> float | None: ...

    @property
    def min_row_ratio(self) -> float | None: ...

    @property
    def max_rejected_share(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class GuardViolation:
    """One threshold exceeded, with the numbers."""

    code: str
    """``too_many_leavers`` (leavers + deactivations), ``too_many_changes``,
    ``too_few_rows`` or ``too_many_rejected``."""
    value: float
    limit: float
    message: str


@dataclass(frozen=True, slots=True)
class HoldReason:
    """Why a run is held: every threshold it exceeded."""

    violations: tuple[GuardViolation, ...]

    @property
    def code(self) -> str:
        return self.violations[0].code

    @property
    def message(self) -> str:
        return "; ".join(v.message for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "violations": [
                {"code": v.code, "value": v.value, "limit": v.limit, "message": v.message}
                for v in self.violations
            ],
        }


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "n/a"


def check_guard(
    plan: DeltaPlan,
    previous_population: int,
    rows_in_file: int,
    thresholds: GuardThresholds,
    *,
    rejected_rows: int = 0,
) -> HoldReason | None:
    """The mass-change guard: a :class:`HoldReason` if the plan must wait for an operator.

    ``previous_population``: records last sent active (``index.active_count()``);
    ``rows_in_file``: data rows read from the extract (accepted + rejected);
    ``rejected_rows``: how many of those were rejected.

    Limits are "more than": ``max_leavers=500`` holds at 501. Percent limits compare
    with the previous population and do not apply to a source's first run (no
    population yet); absolute limits always apply.

    The leaver limits count every account the plan would disable: leavers (``full``
    mode, ``leavers: disable``) **plus deactivations** (movers last sent active whose
    new record is inactive, in either mode), so a file that marks everyone terminated
    is held just like an empty one. Changes are joiners + movers (deactivations
    included) + leavers; retries and re-sends asked for by an operator are not. The
    row-count check applies in ``full`` mode only.
    """
    leavers = 0
    if plan.mode == "full" and plan.leaver_policy == "disable":
        leavers = len(plan.leavers) + len(plan.leavers_without_payload)
    pop = previous_population
    out = _leaver_violations(plan, leavers, pop, thresholds)
    out += _change_violations(plan, leavers, pop, thresholds)
    out += _row_violations(plan, pop, rows_in_file, rejected_rows, thresholds)
    return HoldReason(tuple(out)) if out else None


def _leaver_violations(
    plan: DeltaPlan, leavers: int, pop: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """Accounts the plan would disable (leavers + deactivations) over the limits."""
    out: list[GuardViolation] = []
    deactivations = plan.deactivations
    disabling = leavers + deactivations
    if deactivations:
        what = (
            f"{leavers} leavers and {deactivations} deactivations would disable"
            f" {disabling} accounts"
        )
    else:
        what = f"{leavers} leavers would be disabled"
    if thresholds.max_leavers is not None and disabling > thresholds.max_leavers:
        out.append(
            GuardViolation(
                "too_many_leavers",
                disabling,
                thresholds.max_leavers,
                f"{what}, more than the limit of {thresholds.max_leavers}"
                f" ({_pct(disabling, pop)} of {pop} active records)",
            )
        )
    pct = thresholds.max_leavers_percent
    if pct is not None and pop > 0 and disabling * 100.0 > pct * pop:
        out.append(
            GuardViolation(
                "too_many_leavers",
                100.0 * disabling / pop,
                pct,
                f"{what}: {_pct(disabling, pop)} of {pop} active records, more than the"
                f" limit of {pct:g} %",
            )
        )
    return out


def _change_violations(
    plan: DeltaPlan, leavers: int, pop: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """Records the plan would change (joiners + movers + leavers) over the limits."""
    out: list[GuardViolation] = []
    deactivations = plan.deactivations
    changes = plan.joiners + plan.movers + leavers
    detail = f"{plan.joiners} joiners, {plan.movers} movers"
    if deactivations:
        detail += f" (of which {deactivations} deactivations)"
    detail += f", {leavers} leavers"
    if thresholds.max_changes is not None and changes > thresholds.max_changes:
        out.append(
            GuardViolation(
                "too_many_changes",
                changes,
                thresholds.max_changes,
                f"{changes} records would change ({detail}), more than the limit of"
                f" {thresholds.max_changes}",
            )
        )
    cpct = thresholds.max_changes_percent
    if cpct is not None and pop > 0 and changes * 100.0 > cpct * pop:
        out.append(
            GuardViolation(
                "too_many_changes",
                100.0 * changes / pop,
                cpct,
                f"{changes} records would change ({detail}): {_pct(changes, pop)} of {pop}"
                f" active records, more than the limit of {cpct:g} %",
            )
        )
    return out


def _row_violations(
    plan: DeltaPlan, pop: int, rows_in_file: int, rejected_rows: int, thresholds: GuardThresholds
) -> list[GuardViolation]:
    """A file much shorter than the population (full mode), or too many rejected rows."""
    out: list[GuardViolation] = []
    ratio = thresholds.min_row_ratio
    if plan.mode == "full" and ratio is not None and pop > 0 and rows_in_file < ratio * pop:
        out.append(
            GuardViolation(
                "too_few_rows",
                rows_in_file / pop,
                ratio,
                f"the file has {rows_in_file} rows, fewer than {ratio:g} × the {pop} active"
                f" records of the previous state (ratio {rows_in_file / pop:.2f}); a truncated"
                " extract?",
            )
        )
    share = thresholds.max_rejected_share
    if share is not None and rows_in_file > 0 and rejected_rows > share * rows_in_file:
        out.append(
            GuardViolation(
                "too_many_rejected",
                rejected_rows / rows_in_file,
                share,
                f"{rejected_rows} of {rows_in_file} rows were rejected"
                f" ({_pct(rejected_rows, rows_in_file)}), more than the limit of {share:.1%}",
            )
        )
    return out
