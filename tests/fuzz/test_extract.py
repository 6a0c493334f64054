"""Fuzzing the extract reader: whatever the bytes and the profile, the rows are read to the
end or the answer is an error from connector/errors.py (ExtractError, too many rejected
rows); never a crash. Bounded and deterministic (the ``ci`` Hypothesis profile)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import holds

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])

CELLS = [
    "EmployeeId", "id", "Name", "Status", ",", ";", "\t", "|", '"', '""', '"a,b"', "\r\n", "\n",
    "\r", "\x00", "\x1b", "\ufeff", "\u2028", "é", "Ω", "100001", "100001", " ", "", "=1+1",
    "x" * 20, "\\", "'", "#",
]  # fmt: skip
OPTION = st.integers(min_value=0, max_value=255).map(lambda b: bytes([b]))


def _encode(text: str, how: int) -> bytes:
    if how == 1:
        return "\ufeff".encode() + text.encode("utf-8", "surrogatepass")
    if how == 2:
        return text.encode("utf-16")
    if how == 3:
        return text.encode("cp1252", "replace")
    return text.encode("utf-8", "surrogatepass")


CSV_TEXT = st.lists(st.sampled_from(CELLS), max_size=80).map("".join)
HEADED = st.tuples(
    st.sampled_from(["EmployeeId,Name\n", "id;Name;Status\r\n", "EmployeeId\tid\n", ""]), CSV_TEXT
).map("".join)


@FUZZ
@given(OPTION, HEADED, st.integers(min_value=0, max_value=3))
def test_csv_soup_reads_to_the_end_or_raises_a_connector_error(
    option: bytes, text: str, how: int
) -> None:
    holds("extract", option + _encode(text, how))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_read_to_the_end_or_raise_a_connector_error(data: bytes) -> None:
    holds("extract", data)
