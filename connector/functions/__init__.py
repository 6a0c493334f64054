"""The connector as hosted in Azure Functions.

``function_app.py`` parses trigger input and calls :class:`~connector.functions.runtime.Runtime`,
one per worker process. Each module has one reason to change:

- ``runtime``: the per-process facade the functions call, and its lazy construction;
- ``wiring``: settings → storage → state store → Graph targets → engine;
- ``drop``: one dropped file: source → engine → archive or quarantine;
- ``timer``: the timer pass (approvals, resume, reconcile, job health, sweep, status);
- ``approvals``, ``sweep``, ``jobs``: the pass's steps that are more than an engine call;
- ``health``: the ``/api/health`` document;
- ``outcomes``: what an invocation did, as one log line;
- ``markers``: what an operator's marker in ``approvals`` asks for (pure);
- ``dropzone``, ``settings``, ``telemetry``: the storage layout, app settings, events.
"""
