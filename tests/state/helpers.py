"""Records and payloads the state-store tests save and read back."""

from __future__ import annotations

from typing import Any

from connector.state.base import Outcome, RecordEntry, RecordIndex


def fp(i: int) -> bytes:
    """A distinct 16-byte fingerprint per ``i``."""
    return i.to_bytes(16, "big")


def payload(ext: str, title: str = "Engineer") -> dict[str, Any]:
    return {"externalId": ext, "userName": f"{ext.lower()}@example.test", "title": title}


def index(source: str, n: int, *, run: str = "run-1") -> RecordIndex:
    """``n`` created records, every seventh inactive."""
    idx = RecordIndex(source=source)
    for i in range(n):
        idx.entries[f"E{i:04d}"] = RecordEntry(
            fp(i),
            active=i % 7 != 0,
            outcome=Outcome.CREATED.value,
            sent_at=1_700_000_000 + i,
            run_id=run,
        )
    return idx
