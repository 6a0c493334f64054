"""Whether a local lock's holder process is certainly gone, from the facts the lock keeps."""

from __future__ import annotations

from typing import Any

from connector.state.holder import EXITED, ProcessIdentity, holder_gone

HERE = ProcessIdentity(host="hr-01", pid=10, start=500, boot="boot-a", pid_ns="pid:[1]")


def held(**changes: Any) -> dict[str, Any]:
    record = {"host": "hr-01", "pid": 42, "pid_start": 400, "boot_id": "boot-a"}
    return {**record, "pid_ns": "pid:[1]", **changes}


def gone(record: dict[str, Any], *, alive: bool = True, start: int | None = 400) -> bool:
    return holder_gone(record, HERE, start_of=lambda _pid: start, exists=lambda _pid: alive)


def test_holder_whose_pid_no_longer_exists_is_gone() -> None:
    assert gone(held(), alive=False)


def test_holder_whose_pid_runs_with_its_start_time_is_alive() -> None:
    assert not gone(held())


def test_holder_whose_pid_was_reused_by_a_later_process_is_gone() -> None:
    assert gone(held(), start=450)


def test_holder_that_exited_but_is_not_reaped_is_gone() -> None:
    assert gone(held(), start=EXITED)


def test_holder_from_an_earlier_boot_is_gone() -> None:
    assert gone(held(boot_id="boot-b"))


def test_holder_on_another_host_is_never_judged() -> None:
    assert not gone(held(host="hr-02"), alive=False)


def test_holder_in_another_pid_namespace_is_never_judged() -> None:
    assert not gone(held(pid_ns="pid:[2]"), alive=False)


def test_holder_without_a_usable_pid_is_never_judged() -> None:
    for pid in (None, "42", True, 0, -1):
        assert not gone(held(pid=pid), alive=False)


def test_live_pid_without_a_start_time_to_compare_is_alive() -> None:
    assert not gone(held(pid_start=None), start=450)
    assert not gone(held(), start=None)  # /proc cannot tell
    blind = ProcessIdentity(host="hr-01", pid=10, start=None, boot=None, pid_ns=None)
    record = held(pid_ns=None, boot_id=None)
    assert not holder_gone(record, blind, start_of=lambda _p: 450, exists=lambda _p: True)
    assert holder_gone(record, blind, start_of=lambda _p: None, exists=lambda _p: False)
