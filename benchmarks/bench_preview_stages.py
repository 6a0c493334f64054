"""Where a row's instructions go: ``connector preview`` and the plain converter, stage by stage.

Each stage runs in a fresh process under ``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``,
bytecode cached), on N rows and on 1 row of the same extract; a stage's figure is the
instructions per row (N rows minus 1 row, over N - 1), and each stage includes the ones
before it, so the differences between lines are what a stage adds. Load on the host does
not change the counts.

preview (the product's own functions, as ``connector preview`` calls them):

- ``read``: the reader's data pass handing each row's values to a no-op (decoding, block
  splitting, trimming, field count, NUL/control check, id check and id counting);
- ``+ map``: the record builder on each row;
- ``+ operation``: the record stream's requests as ``build_bulk_requests`` makes them
  (bulkId, JSON bytes, size check, batching), not written;
- ``+ write``: the whole ``run_preview`` (payload files, rejected.csv).

With ``--base REV`` the preview stages of an earlier commit (exported with ``git archive``)
are counted in the same run.

converter (``benchmarks/bench_preview.py``'s baseline): ``csv.DictReader`` alone, then a dict
of the mapping's columns per row, then ``orjson.dumps`` per 50 rows written to a file.

    python benchmarks/bench_preview_stages.py [--rows 3000] [--layout default|quoted]
        [--base REV]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_preview import ENV, _export, _instructions  # noqa: E402

from connector.mapping import load_mapping  # noqa: E402
from connector.sample import generate_extract  # noqa: E402

MAPPING = ROOT / "samples" / "mappings" / "default.yaml"

PREVIEW = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.cli.preview import run_preview
from connector.scim import build_bulk_requests
stage, mapping, extract, out = sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
if stage == "write":
    run_preview(mapping, extract, out)
    raise SystemExit
m = load_mapping(mapping)
s = iter_records(extract, m, ids_in_pass=True)
if stage == "operation":
    for _ in build_bulk_requests(s.operations()):
        pass
    raise SystemExit
cols = s.reader.selected_columns(m.required_columns)
e = cols.index(m.external_id_column)
if stage == "map":
    ap = m.bind(cols)
    make = lambda line, v: ap(v, v[e])
else:
    make = lambda line, v: v
kw = dict(columns=m.required_columns, as_list=True, ids_in_pass=True)
for _ in s.reader.iter_mapped(make, **kw):
    pass
"""

CONVERTER = """
import csv, os, sys
import orjson
stage, extract, out, columns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split("\\x1f")
batch, n = [], 0
with open(extract, encoding="utf-8", newline="") as f:
    for row in csv.DictReader(f):
        if stage == "read":
            continue
        batch.append({c: row[c] for c in columns})
        if len(batch) == 50:
            n += 1
            if stage == "write":
                with open(os.path.join(out, f"bulk-{n:05d}.json"), "wb") as g:
                    g.write(orjson.dumps({"Operations": batch}))
            batch = []
"""

STAGES = {
    "preview": ["read", "map", "operation", "write"],
    "converter": ["read", "dict", "write"],
}


def _count(cmd: list[str], work: Path, tag: str) -> int:
    """Instructions of one run of ``cmd``, after a run that caches its bytecode."""
    subprocess.run(cmd, capture_output=True, check=True, env=ENV | {"PYTHONHASHSEED": "0"})
    return _instructions(cmd, work, tag)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--layout", choices=["default", "quoted"], default="default")
    parser.add_argument("--base", help="an earlier commit whose preview stages are counted too")
    args = parser.parse_args()
    columns = "\x1f".join(load_mapping(MAPPING).required_columns)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        work = Path(tmp)
        trees = {"preview": ROOT}
        if args.base:
            trees[f"@{args.base}"] = _export(args.base, work)
        stages_of = dict.fromkeys(trees, STAGES["preview"]) | {"converter": STAGES["converter"]}
        extracts = {}
        for n in (args.rows, 1):
            path = work / f"x{n}.csv"
            generate_extract(path, n, seed=1, layout="default")
            if args.layout == "quoted":
                rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
                with path.open("w", encoding="utf-8", newline="") as f:
                    csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
            extracts[n] = path
        jobs = []
        for who, stages in stages_of.items():
            for stage in stages:
                for n, path in extracts.items():
                    out = work / f"out-{who}-{stage}-{n}"
                    out.mkdir()
                    if who in trees:
                        cmd = [sys.executable, "-c", PREVIEW, str(trees[who]), stage, str(MAPPING)]
                        cmd += [str(path), str(out)]
                    else:
                        cmd = [sys.executable, "-c", CONVERTER, stage, str(path), str(out)]
                        cmd.append(columns)
                    jobs.append((who, stage, n, cmd, out))
        with ThreadPoolExecutor(max_workers=2) as pool:
            got = list(pool.map(lambda j: _count(j[3], j[4], f"{j[1]}-{j[2]}"), jobs))
        counts = {(j[0], j[1], j[2]): c for j, c in zip(jobs, got, strict=True)}
    print(f"{args.layout} layout, {args.rows:,} rows minus 1 row, instructions per row")
    for who, stages in stages_of.items():
        before = 0.0
        for stage in stages:
            per_row = (counts[who, stage, args.rows] - counts[who, stage, 1]) / (args.rows - 1)
            print(f"  {who:<10} {stage:<10} {per_row:>9,.0f}  (+{per_row - before:,.0f})")
            before = per_row


if __name__ == "__main__":
    main()
