"""An identity that may upload and read the logs but not the job still gets its runs done."""

from __future__ import annotations

from pathlib import Path

from connector.errors import PermissionDeniedError
from tests.sync.fakes import people
from tests.sync.world import World


def test_a_403_on_the_job_read_does_not_stop_reconciliation(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.service.job_error = PermissionDeniedError(
        "403: the identity lacks Synchronization.Read.All", status=403
    )
    sent = w.sync("hr_1.csv", people(30))
    assert sent.state == "uploaded"
    done = {s.run_id: s for s in w.reconcile()}
    assert done[sent.run_id].state == "done"
    assert done[sent.run_id].outcomes == {"created": 30}
