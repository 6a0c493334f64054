"""One Functions worker of the fault campaign: a host invocation in its own process.

``python -m benchmarks.fault_campaign_worker SPEC_JSON`` (or ``--wait``: import, then
read the spec as one line from stdin, so a worker can be started ahead of need) builds
the connector the way the Functions host does (settings from the environment,
:class:`Runtime`), then calls the function body in ``function_app.py`` with the object
the host passes: ``ingest_extract`` with the blob extension's ``BlobClient`` naming the blob, or
``reconcile`` with a ``TimerRequest``.
It prints one JSON line: the function's outcome line(s), or its error.

The spec may ask the process to kill itself with SIGKILL at a chosen point, so a crash
lands at the same place for the same seed:

- ``{"kill": {"phase": "start", "writes": n}}``: before the n-th state write (Blob put or
  upload of a state/report blob) made before the first bulkUpload (mid-ingest: planning);
- ``{"kill": {"phase": "send", "acks": n}}``: right after the n-th bulkUpload was
  answered 202, before the engine journals it (mid-upload, the batch in flight);
- ``{"kill": {"phase": "send", "writes": n}}``: before the n-th state write after the
  first bulkUpload (mid-upload: journal, record index);
- ``{"kill": {"phase": "reconcile", "writes": n}}``: before the n-th state write after the
  timer pass started reconciling a source (mid-reconcile).

``op``: ``ingest`` (with ``blob``, the name under ``incoming``; the runtime reads the
blob itself) or ``timer``.

``offset``: seconds this instance's clock runs ahead of real time (the campaign moves the
emulator's clock by the same amount: time passing between timer firings);
``lease_seconds``: the Blob lease length
(15-60 s; the product uses 60).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class OffsetClock:
    """The real clock, ``offset`` seconds ahead (sleeps are real)."""

    def __init__(self, offset: float) -> None:
        self._offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _Killer:
    """Counts state writes and bulkUpload answers; SIGKILLs this process at the spec's point."""

    def __init__(self, kill: dict[str, Any] | None) -> None:
        self.kill = kill or {}
        self.phase = "start"
        self.writes = 0
        self.acks = 0

    def _die(self) -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def enter(self, phase: str) -> None:
        if self.phase != phase:
            self.phase, self.writes = phase, 0

    def write(self) -> None:
        self.writes += 1
        if self.kill.get("phase") == self.phase and self.kill.get("writes") == self.writes:
            self._die()

    def acked(self) -> None:
        self.acks += 1
        if self.kill.get("phase") == "send" and self.kill.get("acks") == self.acks:
            self._die()


def _instrument(spec: dict[str, Any]) -> None:
    from connector.functions import wiring
    from connector.state import blob
    from connector.sync.reconciling import Reconciler

    lease = int(spec.get("lease_seconds") or blob.LEASE_SECONDS)
    blob.LEASE_SECONDS = lease
    blob.LOST_AFTER_SECONDS = lease * 2 / 3
    killer = _Killer(spec.get("kill"))

    put, writer = blob.BlobBackend.put, blob.BlobBackend.writer

    def counted_put(self: Any, *args: Any, **kw: Any) -> str:
        killer.write()
        return put(self, *args, **kw)

    def counted_writer(self: Any, name: str, **kw: Any) -> Any:
        killer.write()
        return writer(self, name, **kw)

    send = wiring._WaitBoundedTarget.send

    async def counted_send(self: Any, payload: Any) -> Any:
        killer.enter("send")
        receipt = await send(self, payload)
        killer.acked()
        return receipt

    reconcile = Reconciler.reconcile_source

    async def reconciling(self: Any, *args: Any, **kw: Any) -> Any:
        killer.enter("reconcile")
        return await reconcile(self, *args, **kw)

    blob.BlobBackend.put = counted_put  # type: ignore[method-assign]
    blob.BlobBackend.writer = counted_writer  # type: ignore[method-assign,assignment]
    wiring._WaitBoundedTarget.send = counted_send  # type: ignore[method-assign]
    Reconciler.reconcile_source = reconciling  # type: ignore[method-assign]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "connector.functions":
            self.lines.append(record.getMessage())


def main(argv: list[str]) -> int:
    if argv == ["--wait"]:
        # Started ahead of need: import first, then read the spec from stdin.
        import function_app
        from connector.functions import runtime

        del function_app, runtime

        line = sys.stdin.readline()
        if not line:
            return 0
        spec: dict[str, Any] = json.loads(line)
    else:
        spec = json.loads(argv[0])
    _instrument(spec)
    import function_app
    from connector.functions import runtime as runtime_module
    from connector.functions.settings import load_settings

    lines = _Lines()
    logger = logging.getLogger("connector.functions")
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out: dict[str, Any] = {"pid": os.getpid()}
    try:
        rt = runtime_module.Runtime(load_settings(), clock=OffsetClock(float(spec["offset"])))
        runtime_module.set_runtime(rt)
        if spec["op"] == "ingest":
            from benchmarks.host_binding import trigger_blob

            function_app.ingest_extract(trigger_blob(spec["blob"]))
        else:
            from azure.functions.timer import TimerRequest

            function_app.reconcile(TimerRequest(past_due=False))
        out["ok"] = True
    except Exception as exc:  # the host records the failure and retries
        out["ok"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
    out["lines"] = lines.lines
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
