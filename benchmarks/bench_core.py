"""Core throughput: HR extract → mapping → serialized BulkRequest payloads on disk.

Generates CSV2SCIM-layout extracts (24 columns) of 100,000 and 1,000,000 rows, then,
each in a fresh child process so peak RSS belongs to the pipeline alone, runs
read → map → serialize with the bundled ``samples/mappings/csv2scim.yaml`` and writes
every ``bulk-NNNNN.json`` to a temporary directory. It reports rows/s (wall and CPU)
and peak RSS, and on a 50,000-row slice compares the per-row speed with building the
same payloads through ``scim2-models`` (``User[EnterpriseUser]`` per row).
``--layout default`` runs the default layout with ``samples/mappings/default.yaml``
instead (no scim2-models comparison: its baseline is written for CSV2SCIM columns).

    python benchmarks/bench_core.py            # 100k and 1M rows
    python benchmarks/bench_core.py --rows 100000   # one size only
    python benchmarks/bench_core.py --layout default --rows 100000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.cli.preview import write_payload  # noqa: E402
from connector.mapping import load_mapping  # noqa: E402
from connector.records import iter_records  # noqa: E402
from connector.sample import generate_extract  # noqa: E402
from connector.scim import build_bulk_requests  # noqa: E402

MAPPINGS = {
    "csv2scim": ROOT / "samples" / "mappings" / "csv2scim.yaml",
    "default": ROOT / "samples" / "mappings" / "default.yaml",
}
MAPPING = MAPPINGS["csv2scim"]  # set from --layout
SLICE = 50_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_pipeline(extract: Path, out: Path, limit: int | None = None) -> dict[str, Any]:
    """read → map → serialize → write; returns counts and timings."""
    mapping = load_mapping(MAPPING)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    stream = iter_records(extract, mapping)
    requests = ops = size = 0

    def first_operations() -> Any:
        for n, op in enumerate(stream.operations(), 1):
            yield op
            if limit is not None and n >= limit:
                return

    ops_in = stream.operations() if limit is None else first_operations()
    for payload in build_bulk_requests(ops_in):
        requests += 1
        ops += len(payload)
        size += len(payload.body)
        write_payload(out / f"bulk-{requests:05d}.json", payload.body)
    stream.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"rows": ops, "requests": requests, "bytes": size, "wall_s": wall, "cpu_s": cpu}


def run_stages(extract: Path, out: Path) -> dict[str, Any]:
    """CPU seconds of each cumulative stage, to show where a run's time goes."""
    from connector.extract import read_extract

    mapping = load_mapping(MAPPING)
    id_col = mapping.external_id_column
    stages: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        cpu0 = time.process_time()
        fn()
        stages[name] = time.process_time() - cpu0

    def id_pass() -> None:
        read_extract(extract, id_column=id_col)._duplicate_hashes()

    def read() -> None:
        # rows as the record stream takes them: lists of the columns the mapping reads
        reader = read_extract(extract, id_column=id_col)
        for _ in reader.iter_mapped(
            lambda line, values: values, columns=mapping.required_columns, as_list=True
        ):
            pass

    def read_map() -> None:
        # the mapping alone: rows to SCIM users, nothing serialized
        reader = read_extract(extract, id_column=id_col)
        columns = reader.selected_columns(mapping.required_columns)
        apply = mapping.bind(columns)
        ext_pos = columns.index(id_col)
        for _ in reader.iter_mapped(
            lambda line, values: apply(values, values[ext_pos]),
            columns=mapping.required_columns,
            as_list=True,
        ):
            pass

    def read_map_operations() -> None:
        # the record stream's operations: bulkId, JSON bytes, the request-cap check
        for _ in iter_records(extract, mapping).operations():
            pass

    def read_map_serialize() -> None:
        for _ in build_bulk_requests(iter_records(extract, mapping).operations()):
            pass

    timed("id pass (duplicate check)", id_pass)
    timed("+ parse rows (reader alone)", read)
    timed("+ map to SCIM users", read_map)
    timed("+ serialize operations", read_map_operations)
    timed("+ batch into BulkRequests", read_map_serialize)
    timed("+ write bulk-NNNNN.json", lambda: run_pipeline(extract, out))
    return {"stages": stages}


def run_baseline(extract: Path, out: Path, limit: int) -> dict[str, Any]:
    """The same payloads built per row with scim2-models (the obvious pydantic way)."""
    from scim2_models import Address, Context, EnterpriseUser, Manager, Name, PhoneNumber, User

    model = User[EnterpriseUser]
    ctx = Context.RESOURCE_CREATION_REQUEST
    head = b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":['
    wall0, cpu0 = time.perf_counter(), time.process_time()
    batch: list[bytes] = []
    requests = rows = 0
    with extract.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if rows >= limit:
                break
            rows += 1
            r = {k: v.strip() for k, v in row.items()}
            user = model(
                external_id=r["WorkerID"],
                user_name=r["UserID"] or None,
                name=Name(family_name=r["LastName"] or None, given_name=r["FirstName"] or None),
                active=r["WorkerStatus"] == "Active",
                display_name=r["FullName"] or None,
                nick_name=r["UserID"] or None,
                user_type=r["WorkerType"] or None,
                title=r["JobTitle"] or None,
                addresses=[
                    Address(
                        type="work",
                        street_address=r["StreetAddress"] or None,
                        locality=r["City"] or None,
                        postal_code=r["ZipCode"] or None,
                        country=r["CountryCode"] or None,
                    )
                ],
                phone_numbers=[PhoneNumber(type="work", value=r["OfficePhone"] or None)],
            )
            user[EnterpriseUser] = EnterpriseUser(
                employee_number=r["WorkerID"],
                cost_center=r["CostCenter"] or None,
                organization=r["Company"] or None,
                division=r["Division"] or None,
                department=r["Department"] or None,
                manager=Manager(value=r["ManagerID"]) if r["ManagerID"] else None,
            )
            data = user.model_dump_json(scim_ctx=ctx, exclude_none=True)
            op = (
                '{"method":"POST","bulkId":"'
                + f"{r['WorkerID']}:L{rows + 1}"
                + '","path":"/Users","data":'
                + data
                + "}"
            )
            batch.append(op.encode())
            if len(batch) == 50:
                requests += 1
                body = head + b",".join(batch) + b'],"failOnErrors":null}'
                (out / f"base-{requests:05d}.json").write_bytes(body)
                batch = []
    if batch:
        requests += 1
        body = head + b",".join(batch) + b'],"failOnErrors":null}'
        (out / f"base-{requests:05d}.json").write_bytes(body)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"rows": rows, "requests": requests, "wall_s": wall, "cpu_s": cpu}


def child(extract: Path, mode: str, out_base: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-core-out-", dir=out_base) as tmp:
        out = Path(tmp)
        if mode == "pipeline":
            result = run_pipeline(extract, out)
        elif mode == "stages":
            result = run_stages(extract, out)
        elif mode == "slice":
            result = run_pipeline(extract, out, limit=SLICE)
        else:
            result = run_baseline(extract, out, SLICE)
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _spawn(extract: Path, mode: str, out_base: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            str(extract),
            "--out-base",
            out_base,
            "--layout",
            _layout(extract),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _layout(extract: Path) -> str:
    return extract.stem.split("-")[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, action="append", help="extract size (repeatable)")
    parser.add_argument(
        "--out-base",
        default="/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir(),
        help="where the temporary payload directory goes (default: tmpfs when present,"
        " so the figures measure the engine rather than the disk's file-creation cost)",
    )
    parser.add_argument("--layout", choices=sorted(MAPPINGS), default="csv2scim")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "EXTRACT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    global MAPPING
    MAPPING = MAPPINGS[args.layout]
    if args.child:
        child(Path(args.child[1]), args.child[0], args.out_base)
        return
    sizes = args.rows or [100_000, 1_000_000]
    print(
        f"machine: {os.cpu_count()} cpu, {_cpu_model()}, Python {platform.python_version()},"
        f" load average {os.getloadavg()[0]:.2f}; payloads written under {args.out_base}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        results: dict[int, dict[str, Any]] = {}
        for rows in sizes:
            extract = Path(tmp) / f"extract-{args.layout}-{rows}.csv"
            t0 = time.perf_counter()
            generate_extract(extract, rows, seed=1, layout=args.layout)
            gen_s = time.perf_counter() - t0
            mb = extract.stat().st_size / 1e6
            print(f"generated {rows:,} {args.layout} rows ({mb:.0f} MB) in {gen_s:.1f} s")
            r = _spawn(extract, "pipeline", args.out_base)
            results[rows] = r
            print(
                f"  pipeline {rows:>9,} rows: {r['rows'] / r['wall_s']:>9,.0f} rows/s wall,"
                f" {r['rows'] / r['cpu_s']:>9,.0f} rows/s cpu, peak RSS {r['peak_rss_mb']:.0f} MB,"
                f" {r['requests']:,} requests, {r['bytes'] / 1e6:,.0f} MB of payloads"
            )
        smallest = Path(tmp) / f"extract-{args.layout}-{min(sizes)}.csv"
        st = _spawn(smallest, "stages", args.out_base)["stages"]
        print(f"  where the CPU time goes ({min(sizes):,} rows, cumulative stages):")
        prev = 0.0
        for name, secs in st.items():
            per_row = (secs - prev) / min(sizes) * 1e6
            print(f"    {name:<30} {secs:6.3f} s  (+{per_row:.2f} us/row)")
            prev = secs
        if args.layout == "csv2scim":
            ours = _spawn(smallest, "slice", args.out_base)
            base = _spawn(smallest, "baseline", args.out_base)
            ours_rate = ours["rows"] / ours["cpu_s"]
            base_rate = base["rows"] / base["cpu_s"]
            print(
                f"  {SLICE:,}-row slice: ours {ours_rate:,.0f} rows/s cpu, scim2-models per row"
                f" {base_rate:,.0f} rows/s cpu -> {ours_rate / base_rate:.1f}x"
            )
        if len(results) > 1:
            lo, hi = min(results), max(results)
            grow = results[hi]["peak_rss_mb"] - results[lo]["peak_rss_mb"]
            print(f"  peak RSS {lo:,} -> {hi:,} rows: {grow:+.0f} MB")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
