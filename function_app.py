"""Azure Functions adapter: triggers in, engine calls out.

Three functions (names shared with ``infra/`` and ``docs/architecture.md``):

- ``ingest_extract``: Event Grid blob trigger on ``incoming/{name}`` (connection
  ``HrDropStorage``): plan → hold/upload → archive, or quarantine with an error file.
- ``reconcile``: timer (``%RECONCILE_SCHEDULE%``, UTC on Flex Consumption): approvals and discards,
  waiting runs, reconciliation, job health, files left in ``incoming``, status.
- ``health``: ``GET /api/health`` (function key): the connector's view of itself.

The logic lives in :mod:`connector.functions.runtime`. The functions are plain ``def``: the host
runs them on its thread pool, and each runs the engine in its own event loop
(``asyncio.run``), so a long plan never stalls the worker's loop or ``/api/health``.

``ingest_extract`` binds the trigger to a ``BlobClient`` (an SDK-type binding,
``azurefunctions-extensions-bindings-blob``): the host then sends the worker the blob's name,
not its bytes, and the runtime reads the file in bounded chunks (docs/functions.md). That
type must be importable when the host indexes the app, so the extension (and through it the
Blob SDK) loads here; everything else (settings, clients, engine) is built on the first
invocation, once per worker process.
"""

from __future__ import annotations

import asyncio
import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blobext

__all__ = ["TRIGGER_CONNECTION", "app", "health", "ingest_extract", "reconcile"]

log = logging.getLogger("connector.functions")

TRIGGER_CONNECTION = "HrDropStorage"  # == connector.functions.settings.TRIGGER_CONNECTION

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name("ingest_extract")
@app.blob_trigger(
    arg_name="blob",
    path="incoming/{name}",
    connection=TRIGGER_CONNECTION,
    source=func.BlobSource.EVENT_GRID,
)
def ingest_extract(blob: blobext.BlobClient) -> None:
    """A file landed in ``incoming``: plan it, hold or upload it, then archive it.

    ``blob`` names the file; its bytes are read by the runtime, a chunk at a time.
    """
    from connector.functions.runtime import get_runtime

    runtime = get_runtime()
    outcome = asyncio.run(runtime.ingest(f"{blob.container_name}/{blob.blob_name}"))
    log.info("ingest_extract: %s", outcome.line())


@app.function_name("reconcile")
@app.timer_trigger(arg_name="timer", schedule="%RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    """Approvals, waiting runs, reconciliation, job health, stray files, status."""
    from connector.errors import ConnectorError
    from connector.functions.runtime import get_runtime

    if timer.past_due:
        log.info("reconcile: running late (past due)")
    outcome = asyncio.run(get_runtime().run_pass())
    log.info("reconcile: %s", outcome.line())
    if outcome.first_error is not None:  # the status is written; now let the alert fire
        raise ConnectorError(
            f"reconcile pass finished with failed steps: {', '.join(outcome.errors)}"
            " (each is logged above as one line with its error type and code)"
        ) from outcome.first_error


@app.function_name("health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """The connector's view of itself; 200 when healthy, 503 otherwise."""
    import orjson

    from connector.functions.runtime import get_runtime

    try:
        body = get_runtime().health()
    except Exception as exc:  # settings/config errors are the answer, not a crash
        body = {"status": "degraded", "config": {"loaded": False, "error": str(exc)}}
    code = 200 if body.get("status") == "ok" else 503
    log.info("health: %s", body.get("status"))
    return func.HttpResponse(
        orjson.dumps(body, option=orjson.OPT_INDENT_2),
        status_code=code,
        mimetype="application/json",
    )
