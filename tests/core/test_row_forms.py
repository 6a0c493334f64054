"""Rows as lists (the record stream's case) and rows as dicts: the same rows, the same rejections.

For any quote-free extract, over several 64 KiB blocks, with short rows, blank lines,
empty and duplicate ids, the reader must hand the same rows with the same line numbers
in the same order, and record the same rejections in the same order, whichever form
the values take; a handler that rejects rows itself interleaves with the reader's own.
"""

from __future__ import annotations

import io
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.extract import ExtractProfile, read_extract

HEADER = ["Id", "Name", "Dept", "Skip", "Mail"]
COLUMNS = ["Mail", "Id", "Name"]  # a subset: values are picked, in header order


def extract(seed: int, rows: int, bad_share: float) -> bytes:
    """A quote-free extract; with ``bad_share`` some rows are short, blank, id-less or dups."""
    rng = random.Random(seed)
    lines = [",".join(HEADER)]
    for i in range(rows):
        ident = str(10_000 + i)
        cells = [ident, f" Nåme {i} ", f"D{i % 7}", "x", f"u{i}@example.com "]
        if rng.random() < bad_share:
            kind = rng.randrange(4)
            if kind == 0:
                cells = cells[:3]  # wrong field count
            elif kind == 1:
                cells[0] = " "  # empty id after trimming
            elif kind == 2:
                cells[0] = str(10_000 + rng.randrange(max(i, 1)))  # a duplicate id
            else:
                lines.append("")  # a blank line
        lines.append(",".join(cells))
    return ("\r\n" if seed % 2 else "\n").join(lines).encode() + (b"\n" if seed % 3 else b"")


def read(data: bytes, as_list: bool) -> tuple[list[Any], list[Any], dict[str, Any]]:
    # no share cap: the point is which rows are handed and rejected, not the refusal
    reader = read_extract(io.BytesIO(data), ExtractProfile(max_rejected_share=1.0), id_column="Id")
    names = reader.selected_columns(COLUMNS)

    def make(line: int, values: Any) -> Any:
        cells = tuple(values) if as_list else tuple(values[n] for n in names)
        if cells[names.index("Name")].endswith("3"):  # the handler rejects some rows too
            reader.add_rejected(line, cells[names.index("Id")], "invalid_value", "ends in 3")
            return None
        return line, cells

    out = list(reader.iter_mapped(make, columns=COLUMNS, as_list=as_list))
    return out, list(reader.rejected), reader.stats.to_dict()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.sampled_from([1, 2, 50, 3_000]),  # 3,000 rows span several 64 KiB blocks
    bad_share=st.sampled_from([0.0, 0.0005, 0.01, 0.2]),
)
def test_lists_and_dicts_hand_the_same_rows_and_rejections(
    seed: int, rows: int, bad_share: float
) -> None:
    data = extract(seed, rows, bad_share)
    as_lists = read(data, as_list=True)
    as_dicts = read(data, as_list=False)
    assert as_lists == as_dicts


def test_a_clean_multi_block_file_is_read_whole_and_trimmed() -> None:
    out, rejected, stats = read(extract(1, 3_000, 0.0), as_list=True)
    handed = [row for row in out if row is not None]
    assert stats["rows_read"] == 3_000
    assert len(handed) + len(rejected) == 3_000
    assert handed[0] == (2, ("10000", "Nåme 0", "u0@example.com"))  # header order, trimmed
    assert [line for line, _ in handed] == sorted(line for line, _ in handed)
    assert all(r.reason_code == "invalid_value" for r in rejected)


def test_a_duplicate_far_apart_rejects_both_rows_in_clean_blocks() -> None:
    lines = ["Id,Name,Dept,Skip,Mail"]
    lines += [f"{10_000 + i},N{i},D,x,m{i}@e" for i in range(3_000)]
    lines.append("10005,Other,D,x,o@e")  # the same id as row 6, several blocks later
    out, rejected, _ = read("\n".join(lines).encode(), as_list=True)
    assert [
        (r.line, r.reason_code) for r in rejected if r.reason_code == "duplicate_external_id"
    ] == [
        (7, "duplicate_external_id"),
        (3_002, "duplicate_external_id"),
    ]
    assert all(cells[0] != "10005" for _, cells in out)
