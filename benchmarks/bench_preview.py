"""Mapping speed: the whole ``connector preview`` command against a plain converter, same run.

Generates three extracts of the same size (default 300,000 rows): the default layout
(``samples/mappings/default.yaml``), the same rows with every field quoted (as
spreadsheets and many HR systems write them), and the CSV2SCIM layout
(``samples/mappings/csv2scim.yaml``). For each it runs, in turns (A B A B ...) so a change
in the host's load hits all alike, each in a fresh process with its interpreter start-up
included:

- ``preview``: ``connector preview -m MAPPING EXTRACT -o DIR`` (read, duplicate ids,
  every row check, mapping, serialization, batching, one file per request);
- ``baseline``: a plain, unvalidated converter of the same columns: ``csv.DictReader``,
  a dict per row of the columns the mapping reads, ``orjson.dumps`` per 50 rows, each
  written to its own file;
- with ``--base REV``: ``preview`` of an earlier commit (exported with ``git archive``).

It prints rows/s of CPU (user + system of the child) and of wall time for each (the
median of the rounds) and the ratio preview / baseline. Payloads go to a fresh
directory under ``/dev/shm`` when present (the engine, not the disk, is measured).
Children run with bytecode caching on, after one warm-up run each, as an installed
connector does (``PYTHONDONTWRITEBYTECODE`` would make every start compile the sources).
With ``--callgrind N`` it also counts instructions under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``): per row (N rows minus 1 row) and for a 1-row run (start-up),
which other jobs' load does not change.

    python benchmarks/bench_preview.py                      # 300,000 rows, 3 rounds
    python benchmarks/bench_preview.py --base ee7e3ca --rounds 3 --callgrind 3000
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.mapping import load_mapping  # noqa: E402
from connector.sample import generate_extract  # noqa: E402

FILES = {  # extract name: (layout, mapping, fully quoted)
    "default": ("default", "default.yaml", False),
    "default-quoted": ("default", "default.yaml", True),
    "csv2scim": ("csv2scim", "csv2scim.yaml", False),
}

# the whole command, as the console script runs it, from the tree given first
PREVIEW = (
    "import sys; sys.path.insert(0, sys.argv[1]); from connector.cli import main;"
    " sys.exit(main(sys.argv[2:]))"
)

BASELINE = """
import csv, os, sys
import orjson
extract, out, columns = sys.argv[1], sys.argv[2], sys.argv[3].split("\\x1f")
batch, n = [], 0
def write(batch, n):
    with open(os.path.join(out, f"bulk-{n:05d}.json"), "wb") as f:
        f.write(orjson.dumps({"Operations": batch}))
with open(extract, encoding="utf-8", newline="") as f:
    for row in csv.DictReader(f):
        batch.append({c: row[c] for c in columns})
        if len(batch) == 50:
            n += 1
            write(batch, n)
            batch = []
if batch:
    write(batch, n + 1)
"""


def _generate(work: Path, rows: int) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for name, (layout, _, quoted) in FILES.items():
        path = work / f"{name}.csv"
        if not quoted:
            generate_extract(path, rows, seed=1, layout=layout)  # type: ignore[arg-type]
        else:
            plain = work / f"{layout}.csv"
            with (
                plain.open(encoding="utf-8", newline="") as src,
                path.open("w", encoding="utf-8", newline="") as dst,
            ):
                csv.writer(dst, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
                    csv.reader(src)
                )
        paths[name] = path
    return paths


#: children cache bytecode, as an installed connector does
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _timed(cmd: list[str], out: Path) -> tuple[float, float]:
    """CPU seconds (user + system) and wall seconds of one child process."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=ENV)
    wall = time.perf_counter() - wall0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(out, ignore_errors=True)
    return cpu, wall


def _export(rev: str, work: Path) -> Path:
    tree = work / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def _instructions(cmd: list[str], out: Path, tag: str) -> int:
    """Instructions callgrind counts for one run of ``cmd``."""
    counts = out / f"callgrind-{tag}.out"
    out.mkdir(parents=True, exist_ok=True)
    env = ENV | {"PYTHONHASHSEED": "0"}
    grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}"]
    subprocess.run([*grind, *cmd], capture_output=True, check=True, env=env)
    for line in counts.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {counts}")


def _head(path: Path, rows: int) -> Path:
    """The first ``rows`` data rows of ``path`` (one line per row in these files)."""
    part = path.with_name(f"{path.stem}-{rows}.csv")
    with (
        path.open(encoding="utf-8", newline="") as src,
        part.open("w", encoding="utf-8", newline="") as dst,
    ):
        for _, line in zip(range(rows + 1), src, strict=False):
            dst.write(line)
    return part


def _counted(cmds: dict[str, list[str]], extract: Path, rows: int, out: Path) -> None:
    """Instructions per row (``rows`` rows minus 1 row) and of a 1-row run, per command."""
    sizes = {rows: _head(extract, rows), 1: _head(extract, 1)}
    jobs = [
        (label, n, [str(sizes[n]) if a == str(extract) else a for a in cmd])
        for label, cmd in cmds.items()
        for n in sizes
    ]

    def one(job: tuple[str, int, list[str]]) -> int:
        label, n, cmd = job
        work = out / f"cg-{label.replace('@', '-')}-{n}"
        cmd = [str(work / "p") if a.endswith("/p") else a for a in cmd]
        (work / "p").mkdir(parents=True, exist_ok=True)
        return _instructions(cmd, work, f"{n}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip([(j[0], j[1]) for j in jobs], pool.map(one, jobs), strict=True))
    for label in cmds:
        per_row = (counts[label, rows] - counts[label, 1]) / (rows - 1)
        print(
            f"  {extract.stem:<15} {label:<18} {per_row:>9,.0f} instructions/row,"
            f" start-up {counts[label, 1] / 1e6:,.0f} M instructions"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", help="an earlier commit whose preview runs in the same turns")
    parser.add_argument("--only", choices=sorted(FILES), action="append")
    parser.add_argument("--callgrind", type=int, metavar="N", help="also count instructions")
    args = parser.parse_args()
    out_base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    print(
        f"{os.cpu_count()} cpu, Python {platform.python_version()}, load average"
        f" {os.getloadavg()[0]:.2f}; {args.rows:,} rows, {args.rounds} rounds;"
        f" payloads under {out_base or tempfile.gettempdir()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as tmp:
        work = Path(tmp)
        paths = _generate(work, args.rows)
        trees = {"preview": ROOT}
        if args.base:
            trees[f"preview@{args.base}"] = _export(args.base, work)
        out = Path(tempfile.mkdtemp(prefix="bench-preview-out-", dir=out_base))
        try:
            for name in args.only or list(FILES):
                _, mapping_file, _ = FILES[name]
                mapping = ROOT / "samples" / "mappings" / mapping_file
                columns = "\x1f".join(load_mapping(mapping).required_columns)
                cmds = {
                    label: [
                        *(sys.executable, "-c", PREVIEW, str(tree), "preview", "-m"),
                        *(str(mapping), str(paths[name]), "-o", str(out / "p")),
                    ]
                    for label, tree in trees.items()
                }
                cmds["baseline"] = [sys.executable, "-c", BASELINE, str(paths[name])]
                cmds["baseline"] += [str(out / "p"), columns]
                for cmd in cmds.values():  # warm-up: bytecode cached, files in the page cache
                    _timed(
                        [_head(paths[name], 1) if a == str(paths[name]) else a for a in cmd],
                        out / "p",
                    )
                got: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
                for _ in range(args.rounds):
                    for label, cmd in cmds.items():
                        got[label].append(_timed(cmd, out / "p"))
                _report(name, args.rows, got)
                if args.callgrind:
                    _counted(cmds, paths[name], args.callgrind, out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def _report(name: str, rows: int, got: dict[str, list[tuple[float, float]]]) -> None:
    cpu = {k: rows / median(c for c, _ in v) for k, v in got.items()}
    wall = {k: rows / median(w for _, w in v) for k, v in got.items()}
    for label in got:
        print(
            f"  {name:<15} {label:<18} {cpu[label]:>9,.0f} rows/s CPU"
            f" {wall[label]:>9,.0f} rows/s wall"
        )
    print(
        f"  {name:<15} preview / baseline: {cpu['preview'] / cpu['baseline']:.2f} (CPU),"
        f" {wall['preview'] / wall['baseline']:.2f} (wall)"
    )


if __name__ == "__main__":
    main()
