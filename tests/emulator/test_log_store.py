"""Log pages found by bisection equal the pages of a filter-sort-slice over the whole log:
equal timestamps, entries appended (also stamped earlier) while paging, date bounds
combined with other filters, both orders, the log delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.emulator.log_entry import LogEntry
from connector.emulator.log_store import LogStore
from connector.emulator.odata import Clause, parse_filter

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _entry(seq: int, second: int, job: str, status: str) -> LogEntry:
    return LogEntry(
        seq=seq,
        id=f"id-{seq}",
        activity=_T0 + timedelta(seconds=second),
        job_id=job,
        cycle_id="c",
        change_id=f"ch-{seq}",
        action="create",
        status=status,
        error=None,
        modified=[],
        source_id=f"s{seq}",
        source_display=None,
        target_id=None,
        target_display=None,
        service_principal_id="sp",
        tenant_id="t",
        duration_ms=1,
    )


def _reference(
    entries: list[LogEntry],
    clauses: list[Clause],
    descending: bool,
    top: int,
    after: tuple[datetime, int] | None,
    cutoff: datetime,
) -> tuple[list[LogEntry], bool]:
    """The straightforward reading: filter everything, sort, drop up to the key, slice."""
    rows = [e for e in entries if e.activity <= cutoff and all(c.matches(e.value) for c in clauses)]
    rows.sort(key=lambda e: (e.activity, e.seq), reverse=descending)
    if after is not None:
        rows = [
            e
            for e in rows
            if ((e.activity, e.seq) < after if descending else (e.activity, e.seq) > after)
        ]
    return rows[:top], len(rows) > top


_rows = st.tuples(
    st.integers(0, 6), st.sampled_from(["a", "b"]), st.sampled_from(["success", "failure"])
)
_date_clause = st.tuples(st.sampled_from(["gt", "ge", "lt", "eq"]), st.integers(-1, 7))


def _filter(dates: list[tuple[str, int]], job: str | None, status: str | None) -> list[Clause]:
    parts = [f"activityDateTime {op} {(_T0 + timedelta(seconds=s)).isoformat()}" for op, s in dates]
    if job is not None:
        parts.append(f"jobId eq '{job}'")
    if status is not None:
        parts.append(f"provisioningStatusInfo/status eq '{status}'")
    return parse_filter(" and ".join(parts), "beta") if parts else []


@settings(max_examples=300, deadline=None)
@given(
    initial=st.lists(_rows, max_size=40),
    appended=st.lists(st.lists(_rows, max_size=4), max_size=8),
    dates=st.lists(_date_clause, max_size=2),
    job=st.none() | st.sampled_from(["a", "b"]),
    status=st.none() | st.sampled_from(["success", "failure"]),
    descending=st.booleans(),
    top=st.integers(1, 5),
    cutoff=st.integers(0, 7),
)
def test_pages_equal_a_full_filter_and_sort_while_entries_are_appended(
    initial: list[tuple[int, str, str]],
    appended: list[list[tuple[int, str, str]]],
    dates: list[tuple[str, int]],
    job: str | None,
    status: str | None,
    descending: bool,
    top: int,
    cutoff: int,
) -> None:
    store, everything = LogStore(), []
    seq = 0

    def add(rows: list[tuple[int, str, str]]) -> None:
        nonlocal seq
        for second, job_id, state in rows:
            seq += 1
            entry = _entry(seq, second, job_id, state)
            store.append(entry)
            everything.append(entry)

    add(initial)
    clauses = _filter(dates, job, status)
    until = _T0 + timedelta(seconds=cutoff)
    after: tuple[datetime, int] | None = None
    for pages in range(200):
        got = store.page(clauses, descending=descending, top=top, after=after, cutoff=until)
        assert got == _reference(everything, clauses, descending, top, after, until)
        page, more = got
        if not more:
            break
        after = (page[-1].activity, page[-1].seq)
        if pages < len(appended):
            add(appended[pages])
    assert list(store) == sorted(everything, key=lambda e: (e.activity, e.seq))


def test_entries_with_equal_times_page_in_append_order_without_loss() -> None:
    store = LogStore()
    entries = [_entry(i, 0, "a", "success") for i in range(1, 8)]
    for e in entries:
        store.append(e)
    seen: list[LogEntry] = []
    after = None
    while True:
        page, more = store.page([], descending=False, top=3, after=after, cutoff=_T0)
        seen += page
        if not more:
            break
        after = (page[-1].activity, page[-1].seq)
    assert seen == entries


def test_an_entry_stamped_before_the_last_one_is_kept_in_time_order() -> None:
    store = LogStore()
    late, early = _entry(1, 5, "a", "success"), _entry(2, 1, "a", "success")
    store.append(late)
    store.append(early)
    assert list(store) == [early, late]
    assert store.visible(_T0 + timedelta(seconds=2)) == [early]
