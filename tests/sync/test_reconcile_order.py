"""Log entries shared among a record's sends by order and time; the most significant
entry of a send decides its outcome (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.reconcile import (
    LogEntry,
    Outcome,
    SentRecord,
    assign_entries,
    reconcile,
    reconcile_runs,
)

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def send(run: str, seconds: float, action: str = "mover") -> SentRecord:
    return SentRecord("E1", at(seconds), action=action, run_id=run)


def log(
    ident: str, seconds: float, action: str = "update", status: str = "success", code: str = ""
) -> LogEntry:
    return LogEntry(ident, at(seconds), "E1", action, status, error_code=code or None)


def test_two_sends_a_second_apart_each_take_their_own_entry() -> None:
    sends = [send("day1", 0, "joiner"), send("day2", 1)]
    out = reconcile_runs(sends, [log("a", 0, "create"), log("b", 1)], now=at(60), skew=SKEW)
    assert out["day1"].outcomes["E1"].outcome is Outcome.CREATED
    assert out["day2"].outcomes["E1"].outcome is Outcome.UPDATED


def test_entries_written_after_both_sends_still_go_to_the_sends_in_order() -> None:
    sends = [send("day1", 0, "joiner"), send("day2", 1)]
    entries = [log("a", 180, "create"), log("b", 181)]
    out = reconcile_runs(sends, entries, now=at(600), skew=SKEW)
    assert out["day1"].outcomes["E1"].log_id == "a"
    assert out["day2"].outcomes["E1"].log_id == "b"


def test_an_entry_is_never_given_to_a_send_made_after_it() -> None:
    sends = [send("day1", 0), send("day2", 3600)]
    [first, second] = assign_entries(sends, [log("a", 30), log("b", 40)], SKEW)
    assert [e.id for e in first] == ["a", "b"]
    assert second == []


def test_a_resent_batch_skip_does_not_overturn_the_create() -> None:
    skipped = log("b", 0, "other", "skipped", "RedundantExport")
    for entries in ([log("a", 0, "create"), skipped], [skipped, log("a", 0, "create")]):
        result = reconcile([send("r", 0, "joiner")], entries, now=at(60), skew=SKEW)
        assert result.outcomes["E1"].outcome is Outcome.CREATED
        assert result.outcomes["E1"].error_code is None


def test_a_resent_batch_skip_before_the_next_send_stays_with_the_first_send() -> None:
    sends = [send("day1", 0, "joiner"), send("day2", 60)]
    entries = [log("a", 0, "create"), log("b", 1, "other", "skipped", "RedundantExport")]
    out = reconcile_runs(sends, entries, now=at(120), skew=SKEW)
    assert out["day1"].outcomes["E1"].outcome is Outcome.CREATED
    assert out["day2"].outcomes["E1"].outcome is Outcome.PENDING
    out = reconcile_runs(sends, [*entries, log("c", 61)], now=at(120), skew=SKEW)
    assert out["day2"].outcomes["E1"].log_id == "c"


def test_significance_orders_create_update_reference_failure_skip() -> None:
    entries = [
        log("skip", 1, "other", "skipped", "RedundantExport"),
        log("fail", 2, "update", "failure", "SomeError"),
        log("ref", 3, "update", "success", "UnableToResolveReferenceAttributeValue"),
        log("upd", 4),
    ]
    seen = []
    for n in range(1, len(entries) + 1):
        result = reconcile([send("r", 0)], entries[:n], now=at(60), skew=SKEW)
        seen.append(result.outcomes["E1"].log_id)
    assert seen == ["skip", "fail", "ref", "upd"]
    # Reverse arrival: the most significant still wins.
    result = reconcile([send("r", 0)], list(reversed(entries)), now=at(60), skew=SKEW)
    assert result.outcomes["E1"].log_id == "upd"


def test_entries_before_the_first_send_or_its_previous_entry_are_dropped() -> None:
    first = SentRecord("E1", at(600), run_id="r", after=at(590))
    [got] = assign_entries([first], [log("old", 200), log("prev", 590), log("new", 601)], SKEW)
    assert [e.id for e in got] == ["new"]
