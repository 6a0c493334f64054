"""Core speed of two versions in one run: an earlier commit against the working tree.

The earlier commit is exported with ``git archive`` to a temporary directory; both
versions then map the same generated extracts, each run in a fresh process, in turns
(A B A B ...), so a change in the host's speed hits both alike. For each layout
(CSV2SCIM with ``samples/mappings/csv2scim.yaml``, the default layout with
``samples/mappings/default.yaml``) it reports rows/s of CPU for

- ``pipeline``: read → map → serialize → batch (``iter_records`` and
  ``build_bulk_requests``, no files written), and
- ``map``: the mapping alone (``Mapping.bind`` applied to rows already read),

and, with ``--callgrind``, instructions per row under ``valgrind --tool=callgrind``
(N rows minus 1 row, ``PYTHONHASHSEED=0``), which other jobs' load does not change.

    python benchmarks/compare_core.py --base HEAD~1 --rounds 3 --callgrind
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("csv2scim", "default")
MODES = ("pipeline", "map")

# run by each version's interpreter with that version's tree first on sys.path
CHILD = """
import csv, json, sys, time
root, mapping_file, extract, mode = sys.argv[1:5]
sys.path.insert(0, root)
from connector.errors import TransformError
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.scim import build_bulk_requests
mapping = load_mapping(mapping_file)
if mode == "pipeline":
    cpu0 = time.process_time()
    rows = 0
    for payload in build_bulk_requests(iter_records(extract, mapping).operations()):
        rows += len(payload)
else:
    with open(extract, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        table = list(reader)
    apply = mapping.bind(header)
    pos = header.index(mapping.external_id_column)
    cpu0 = time.process_time()
    for row in table:
        try:
            apply(row, row[pos])
        except TransformError:
            pass
    rows = len(table)
print(json.dumps({"rows": rows, "cpu_s": time.process_time() - cpu0}))
"""


def _mapping(root: Path, layout: str) -> Path:
    return root / "samples" / "mappings" / f"{layout}.yaml"


def _run(root: Path, layout: str, extract: Path, mode: str) -> float:
    """Rows/s of CPU for one run in a fresh process."""
    cmd = [sys.executable, "-c", CHILD, str(root), str(_mapping(root, layout)), str(extract), mode]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["rows"] / result["cpu_s"])


def _instructions(root: Path, layout: str, extract: Path, mode: str, work: Path) -> int:
    """Instructions callgrind counts for one run (interpreter start included)."""
    out = work / f"cg-{root.name}-{layout}-{mode}-{extract.stem}.out"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    cmd += ["-c", CHILD, str(root), str(_mapping(root, layout)), str(extract), mode]
    env = os.environ | {"PYTHONHASHSEED": "0"}
    subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def _generate(root: Path, layout: str, rows: int, path: Path) -> Path:
    sys.path.insert(0, str(root))
    from connector.sample import generate_extract

    generate_extract(path, rows, seed=1, layout=layout)  # type: ignore[arg-type]
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="HEAD~1", help="the earlier commit (default HEAD~1)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="A/B pairs per layout and mode")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--callgrind-rows", type=int, default=5_000)
    args = parser.parse_args()
    base_rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(
        f"{os.cpu_count()} cpu, Python {platform.python_version()}, load average"
        f" {os.getloadavg()[0]:.2f}; base {base_rev} against the working tree"
    )
    with tempfile.TemporaryDirectory(prefix="compare-core-") as tmp:
        work = Path(tmp)
        base = work / "base"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", base_rev], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        versions = {base_rev: base, "now": ROOT}
        for layout in LAYOUTS:
            extract = _generate(ROOT, layout, args.rows, work / f"{layout}-{args.rows}.csv")
            for mode in MODES:
                rates: dict[str, list[float]] = {name: [] for name in versions}
                for _ in range(args.rounds):
                    for name, root in versions.items():
                        rates[name].append(_run(root, layout, extract, mode))
                shown = "; ".join(
                    f"{name} "
                    + ", ".join(f"{r:,.0f}" for r in got)
                    + f" (median {median(got):,.0f})"
                    for name, got in rates.items()
                )
                print(f"{layout:<8} {mode:<8} rows/s CPU, {args.rows:,} rows, in turns: {shown}")
        if args.callgrind:
            n = args.callgrind_rows
            jobs = []
            for layout in LAYOUTS:
                big = _generate(ROOT, layout, n, work / f"{layout}-{n}.csv")
                one = _generate(ROOT, layout, 1, work / f"{layout}-1.csv")
                for mode in MODES:
                    for name, root in versions.items():
                        jobs.append((layout, mode, name, root, big, one))
            with ThreadPoolExecutor(max_workers=2) as pool:
                counts = list(
                    pool.map(
                        lambda j: (
                            _instructions(j[3], j[0], j[4], j[1], work)
                            - _instructions(j[3], j[0], j[5], j[1], work)
                        ),
                        jobs,
                    )
                )
            for (layout, mode, name, *_), count in zip(jobs, counts, strict=True):
                print(f"{layout:<8} {mode:<8} {name:<8} {count / (n - 1):,.0f} instructions/row")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
