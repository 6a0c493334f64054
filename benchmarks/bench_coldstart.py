"""Cold start of the Functions app: how long the host's import of ``function_app`` takes.

The Python worker imports ``function_app`` to index the functions before the first
invocation (Flex Consumption allows 30 s for app initialisation; we aim far lower:
under 1.5 s). Heavy modules are imported lazily on the first invocation instead, so this
also measures what that first invocation pays, separately.

Each figure is the median of fresh interpreter runs (``python -c``), minus the bare
interpreter start, so it is the import cost alone. ``-X importtime`` shows where the
import time goes, grouped by top-level package.

    .venv/bin/python benchmarks/bench_coldstart.py [--runs 7] [--baseline REV]

``--baseline REV`` also measures ``function_app.py`` as it was at git revision ``REV``
(with today's ``connector`` package), interleaved run by run with today's, so both share
the machine's load: the same-run baseline for a change to what the index imports.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.5

INDEX = "import function_app; function_app.app.get_functions()"
# What the first invocation imports on top: connector.functions.runtime (the hosted
# connector) and, through it, settings, storage, identity, Graph and the engine.
FIRST_CALL = (
    INDEX
    + "; import connector.functions.runtime, connector.graph.auth, azure.identity,"
    + " azure.storage.blob"
)
FIRST_CALL_WITH_TELEMETRY = FIRST_CALL + "; import azure.monitor.opentelemetry"
# The trigger's BlobClient type (SDK-type binding) must resolve at index time: the extension
# and the Blob SDK it imports are the part of the index that the first call used to pay.
FUNCTIONS_ONLY = "import azure.functions"
WITH_BLOB_EXTENSION = FUNCTIONS_ONLY + ", azurefunctions.extensions.bindings.blob"


def _run(code: str, cwd: Path = ROOT) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True)
    return time.perf_counter() - start


def _baseline(rev: str, runs: int) -> None:
    """Index and index + first invocation, ``function_app.py`` at ``rev`` vs today's."""
    old = subprocess.run(
        ["git", "show", f"{rev}:function_app.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="coldstart-baseline-") as folder:
        then = Path(folder)
        (then / "function_app.py").write_bytes(old)
        (then / "connector").symlink_to(ROOT / "connector")
        places = {"then": then, "now": ROOT}
        for where in places.values():
            _run(FIRST_CALL, where)  # warm the bytecode caches
        times: dict[str, list[float]] = defaultdict(list)
        for _ in range(runs):
            times["bare"].append(_run("pass"))
            for label, where in places.items():
                times[f"{label} index"].append(_run(INDEX, where))
                times[f"{label} first"].append(_run(FIRST_CALL, where))
    med = {k: statistics.median(v) for k, v in times.items()}
    for label in places:
        index = (med[f"{label} index"] - med["bare"]) * 1000
        first = (med[f"{label} first"] - med["bare"]) * 1000
        name = f"function_app.py at {rev}" if label == "then" else "function_app.py now"
        print(f"  {name:<36} index {index:5.0f} ms, index + first invocation {first:5.0f} ms")


def _median(code: str, runs: int) -> tuple[float, float, float]:
    _run(code)  # warm the bytecode cache, as a deployed package has it
    times = sorted(_run(code) for _ in range(runs))
    return statistics.median(times), times[0], times[-1]


def _importtime(code: str) -> list[tuple[str, float]]:
    """Self time per top-level package (seconds), largest first, from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = defaultdict(float)
    pattern = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")
    for line in proc.stderr.splitlines():
        m = pattern.match(line)
        if not m:
            continue
        self_us, name = int(m.group(1)), m.group(4)
        top = name.split(".")[0]
        if top in ("azure", "connector") and "." in name:
            top = ".".join(name.split(".")[:2])
        totals[top] += self_us / 1e6
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--baseline", metavar="REV", help="also measure function_app.py at REV")
    args = parser.parse_args()

    bare, _, _ = _median("pass", args.runs)
    index, index_lo, index_hi = _median(INDEX, args.runs)
    first, _, _ = _median(FIRST_CALL, args.runs)
    first_tel, _, _ = _median(FIRST_CALL_WITH_TELEMETRY, args.runs)
    functions_only, _, _ = _median(FUNCTIONS_ONLY, args.runs)
    extension, _, _ = _median(WITH_BLOB_EXTENSION, args.runs)

    print(f"machine: {os.cpu_count()} CPUs, {_cpu()}, Python {platform.python_version()}")
    print(f"interpreter start (python -c pass):            {bare * 1000:7.0f} ms")
    print(
        f"import function_app + index (host cold start): {(index - bare) * 1000:7.0f} ms"
        f"  (median of {args.runs}; raw {index_lo * 1000:.0f}-{index_hi * 1000:.0f} ms"
        " incl. interpreter)"
    )
    ext_ms = (extension - functions_only) * 1000
    print(f"  of which the blob binding extension + SDK:   {ext_ms:7.0f} ms")
    print(f"+ first invocation's lazy imports:             {(first - index) * 1000:7.0f} ms")
    print(f"= index + first invocation:                    {(first - bare) * 1000:7.0f} ms")
    print(f"+ azure-monitor-opentelemetry (when enabled):  {(first_tel - first) * 1000:7.0f} ms")
    print()
    print("where the cold-start import time goes (self time, top packages):")
    for name, seconds in _importtime(INDEX)[:8]:
        print(f"  {name:<32} {seconds * 1000:7.1f} ms")
    print()
    print("what the first invocation adds (self time, top packages):")
    before = dict(_importtime(INDEX))
    after = _importtime(FIRST_CALL)
    added = sorted(
        ((n, s - before.get(n, 0.0)) for n, s in after), key=lambda kv: kv[1], reverse=True
    )
    for name, seconds in added[:8]:
        print(f"  {name:<32} {seconds * 1000:7.1f} ms")
    if args.baseline:
        print()
        print(f"same-run baseline (interleaved, median of {args.runs}):")
        _baseline(args.baseline, args.runs)
    ok = index - bare < TARGET_SECONDS
    print()
    print(f"target: import under {TARGET_SECONDS:.1f} s -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
