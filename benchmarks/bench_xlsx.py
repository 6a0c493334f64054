"""Memory of reading an .xlsx extract stays flat with the sheet size: 100k vs 300k rows.

Each read runs in a fresh interpreter and reports its peak RSS (``ru_maxrss``) and wall
time. Rows per size: the interpreter with the modules imported and no read (the floor);
the same rows as a CSV extract mapped by :func:`connector.records.iter_records` (the CSV
baseline, measured in the same run); the workbook converted, streaming
(:mod:`connector.sources.xlsx`: openpyxl ``read_only``), and mapped by the same reader;
and, with ``--naive``, the workbook loaded whole (openpyxl without ``read_only``), which
is what streaming avoids. The extracts are ``connector sample`` files (22 columns, about
250 bytes of CSV per row), written to the workbook as text with openpyxl ``write_only``.

    .venv/bin/python benchmarks/bench_xlsx.py [--sizes 100000 300000] [--naive]
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import openpyxl
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sources.xlsx import readable
mode, mapping_path, extract = sys.argv[1:4]
mapping = load_mapping(mapping_path)
path = Path(extract)
start = time.perf_counter()
rows = 0
if mode in ("csv", "xlsx"):
    with readable(mapping, path, path.name) as (rows_file, for_rows):
        stream = iter_records(rows_file, for_rows, label=path.name)
        with stream:
            for _ in stream:
                rows += 1
elif mode == "naive":
    book = openpyxl.load_workbook(path, data_only=True)
    rows = book.worksheets[0].max_row - 1
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

MAPPING = ROOT / "samples" / "mappings" / "default.yaml"


def _child(mode: str, extract: Path) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(MAPPING), str(extract)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _extracts(folder: Path, n: int) -> tuple[Path, Path]:
    import openpyxl

    from connector.sample import generate_extract

    csv_path = folder / f"hr-{n}.csv"
    generate_extract(csv_path, n, seed=7)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Workers")
    with csv_path.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            sheet.append(row)
    xlsx_path = folder / f"hr-{n}.xlsx"
    book.save(xlsx_path)
    return csv_path, xlsx_path


def _cell(result: dict[str, float]) -> str:
    return f"{result['peak_mb']:,.0f} MB, {result['seconds']:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--naive", action="store_true", help="also load the workbook whole")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    print("| rows | imports only | CSV extract (baseline) | .xlsx streamed | .xlsx loaded whole |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-xlsx-") as tmp:
        for n in args.sizes:
            csv_path, xlsx_path = _extracts(Path(tmp), n)
            floor = _child("floor", csv_path)
            base = _child("csv", csv_path)
            streamed = _child("xlsx", xlsx_path)
            assert base["rows"] == streamed["rows"] == n, (base, streamed)
            naive = _cell(_child("naive", xlsx_path)) if args.naive else "not run"
            print(
                f"| {n:,} | {floor['peak_mb']:,.0f} MB | {_cell(base)} | "
                f"**{_cell(streamed)}** | {naive} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
