"""Pulled sources: ``sql`` databases and ``rest`` APIs read into snapshot CSV files.

A snapshot (:class:`~connector.sources.snapshot.Snapshot`) is a canonical CSV file plus
its SHA-256: the engine ingests it exactly like a dropped extract. Entry point:
:func:`connector.sources.pull.pull_snapshot`.
"""
