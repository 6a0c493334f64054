"""Coverage-guided fuzzing of the parts that take untrusted input, for minutes per target.

Targets (``tests/fuzz/targets.py``): ``extract`` (the extract reader), ``mapping`` (the
mapping loader and validator), ``sources`` (the sources config loader), ``psd1`` (the
CSV2SCIM importer) and ``bulk`` (the emulator's bulkUpload parser and processing).
Invariant: an input ends in a result or an exception from connector/errors.py.

Each target runs in its own process under atheris (libFuzzer; ``pip install -e .[fuzz]``),
seeded from the repository's samples, for the given minutes. A crash, or an input
that runs longer than ``--input-timeout`` seconds, is written as a regression test
``tests/fuzz/regressions/test_found_<target>_<hash>.py`` asserting the invariant on that
input: fix the defect, or mark the test ``xfail(strict=True)`` with the owner. Without
atheris (``--engine mutate``), a plain mutational loop over the same seeds runs in
process for the same time (no coverage guidance).

Usage: python benchmarks/fuzz.py [--minutes 2] [--engine atheris|mutate] [--no-known] [TARGET ...]
Prints, per target: inputs run, seconds, corpus size, findings.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGRESSIONS = ROOT / "tests" / "fuzz" / "regressions"
TARGET_NAMES = ("extract", "mapping", "sources", "psd1", "bulk")
_BULK_SEED = (
    b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[{"method":'
    b'"POST","bulkId":"1","path":"/Users","data":{"schemas":["urn:ietf:params:scim:schemas:'
    b'core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],'
    b'"externalId":"100001","userName":"a@example.com","active":true,"name":{"givenName":'
    b'"A"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":'
    b'{"value":"100002"}}}}]}'
)


def seeds(target: str) -> list[bytes]:
    """Starting inputs from the repository's own samples (with the option byte where the
    target reads one)."""
    samples = ROOT / "samples"
    if target == "extract":
        csvs = [p.read_bytes()[:4000] for p in sorted(samples.glob("*.csv"))]
        return [bytes([b]) + c for c in csvs for b in (0, 25, 50)]
    if target == "mapping":
        return [p.read_bytes() for p in sorted((samples / "mappings").glob("*.yaml"))]
    if target == "sources":
        return [
            b"sources:\n  - name: employees\n    match: employees/\n    mapping: m.yaml\n"
            b"    service_principal_id: 00000000-0000-0000-0000-00000000f022\n"
            b"    job_id: API2AAD.x\n    thresholds: {max_changes: 5}\n"
            b"    extract_timestamp: {pattern: '_(?P<ts>\\d{8})\\.csv$', format: '%Y%m%d'}\n"
        ]
    if target == "psd1":
        fixtures = ROOT / "tests" / "migrate" / "fixtures"
        return [b"\x00" + p.read_bytes()[:6000] for p in sorted(fixtures.glob("*.psd1"))]
    return [_BULK_SEED]


# -- a worker process: one target under atheris ------------------------------------------


def _atheris_worker(target: str, argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["connector", "tests.fuzz"]):
        from tests.fuzz.targets import KNOWN_DEFECTS, holds

    known = () if os.environ.get("FUZZ_NO_KNOWN") else KNOWN_DEFECTS

    def one(data: bytes) -> None:
        holds(target, data, known=known)

    atheris.Setup([sys.argv[0], *argv], one)
    atheris.Fuzz()


# -- the driver ---------------------------------------------------------------------------


def _crash_line(log: str) -> str:
    """The exception line of the traceback atheris printed (no input values: the type and
    the start of the message)."""
    lines = [ln.strip() for ln in log.splitlines()]
    for i, line in enumerate(lines):
        if "Uncaught Python exception" in line:
            for later in lines[i + 1 :]:
                if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", later):
                    return later[:200]
    if "timeout" in log.lower():
        return "timeout: an input ran longer than the per-input limit"
    return "crash (see the log)"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_regression(
    target: str, data: bytes, found: str, engine: str, folder: Path = REGRESSIONS
) -> Path:
    """A small test asserting the invariant on ``data``; returns its path."""
    digest = hashlib.sha256(data).hexdigest()[:10]
    path = folder / f"test_found_{target}_{digest}.py"
    day = datetime.now(UTC).date().isoformat()
    path.write_text(
        f'"""Found by benchmarks/fuzz.py ({engine}) on {day}:\n{found[:90]!r}.\n\n'
        "The input must end in a result or an error from connector/errors.py. Fix the\n"
        'defect, or mark this test xfail(strict=True) naming the owner."""\n\n'
        "from __future__ import annotations\n\n"
        "from tests.fuzz.targets import holds\n\n"
        f"INPUT = {data!r}\n\n\n"
        f"def test_{target}_input_{digest}_ends_in_a_result_or_a_connector_error() -> None:\n"
        f'    holds("{target}", INPUT, known=())\n',
        encoding="utf-8",
    )
    return path


def run_atheris(target: str, seconds: int, input_timeout: int, work: Path) -> dict[str, object]:
    corpus = work / target / "corpus"
    artifacts = work / target / "artifacts"
    corpus.mkdir(parents=True)
    artifacts.mkdir(parents=True)
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    args = [
        f"-max_total_time={seconds}",
        f"-timeout={input_timeout}",
        "-rss_limit_mb=2048",
        "-max_len=8192",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", target, "--", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    elapsed = time.monotonic() - started
    log = proc.stdout + proc.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    found = []
    for artifact in sorted(artifacts.iterdir()):
        line = _crash_line(log)
        found.append(write_regression(target, artifact.read_bytes(), line, "atheris"))
    (work / target / "log.txt").write_text(log, encoding="utf-8")
    return {
        "runs": int(runs[-1]) if runs else 0,
        "seconds": round(elapsed),
        "corpus": sum(1 for _ in corpus.iterdir()),
        "found": [_shown(p) for p in found],
        "exit": proc.returncode,
    }


def _mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            del buf[min(pos, len(buf) - 1)]
        elif op == 1:
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and buf:
            buf[min(pos, len(buf) - 1)] = rng.choice(b'\x00\n\r",;\t{}[]:-&*!#%\\\xff\xfe')
        elif op == 3:
            other = rng.choice(pool)
            start = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[start : start + rng.randint(1, 64)]
        elif buf:
            end = min(len(buf), pos + rng.randint(1, 64))
            buf[pos:end] = buf[pos:end] * rng.randint(2, 50)
    return bytes(buf[:8192])


def run_mutate(
    target: str, seconds: float, seed: int, known: bool = True, folder: Path = REGRESSIONS
) -> dict[str, object]:
    """No coverage guidance: random edits of the seeds (and of inputs that raised nothing)
    until the time is up or the first finding."""
    from tests.fuzz.targets import KNOWN_DEFECTS, holds

    rng = random.Random(seed)
    pool = seeds(target)
    deadline = time.monotonic() + seconds
    runs, found = 0, []
    started = time.monotonic()
    while time.monotonic() < deadline and not found:
        data = _mutate(rng, rng.choice(pool), pool)
        runs += 1
        try:
            holds(target, data, known=KNOWN_DEFECTS if known else ())
        except Exception as exc:  # a finding: anything but a ConnectorError or a known one
            line = f"{type(exc).__name__}: {str(exc)[:150]}"
            found.append(write_regression(target, data, line, "mutate", folder))
        else:
            if len(pool) < 500 and rng.random() < 0.05:
                pool.append(data)
    return {
        "runs": runs,
        "seconds": round(time.monotonic() - started),
        "corpus": len(pool),
        "found": [_shown(p) for p in found],
    }


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _atheris_worker(sys.argv[2], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(TARGET_NAMES))
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--engine", choices=["atheris", "mutate"], default=None)
    parser.add_argument("--input-timeout", type=int, default=10)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--no-known",
        action="store_true",
        help="report the known defects (KNOWN_DEFECTS in tests/fuzz/targets.py) as findings too",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(TARGET_NAMES))
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose from {TARGET_NAMES}")
    engine = args.engine or ("atheris" if _has_atheris() else "mutate")
    if args.no_known:
        os.environ["FUZZ_NO_KNOWN"] = "1"
    seconds = max(1, int(args.minutes * 60))
    print(f"engine {engine}, {seconds} s per target, started {datetime.now(UTC):%Y-%m-%d %H:%M}")
    runner: Callable[[str], dict[str, object]]
    with tempfile.TemporaryDirectory(prefix="connector-fuzz-") as tmp:
        if engine == "atheris":

            def runner(t: str) -> dict[str, object]:
                return run_atheris(t, seconds, args.input_timeout, Path(tmp))
        else:

            def runner(t: str) -> dict[str, object]:
                return run_mutate(t, seconds, args.seed, known=not args.no_known)

        for target in args.targets or TARGET_NAMES:
            result = runner(target)
            found = result["found"] or "none"
            print(
                f"{target:<8} inputs {result['runs']:>9,}  {result['seconds']:>5} s"
                f"  corpus {result['corpus']:>5}  found: {found}",
                flush=True,
            )


def _has_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
