"""Reading a marker in ``approvals``: what its name and JSON body ask for, and who asks.

A marker that is not understood is invalid (nothing is done): it might have meant
either an approval or a discard.
"""

from __future__ import annotations

import pytest

from connector.functions.markers import ApprovalMarker, MarkerAction


def _marker(name: str, data: bytes, *, complete: bool = True) -> ApprovalMarker:
    return ApprovalMarker(name=name, etag="0x1", data=data, complete=complete)


@pytest.mark.parametrize(
    ("name", "body", "action"),
    [
        ("employees-abc", b"", MarkerAction.APPROVE),
        ("employees-abc", b'{"by": "jdoe"}', MarkerAction.APPROVE),
        ("employees-abc", b'{"action": "approve"}', MarkerAction.APPROVE),
        ("employees-abc", b'{"action": "discard", "by": "jdoe"}', MarkerAction.DISCARD),
        ("employees-abc", b'{"action": " Discard "}', MarkerAction.DISCARD),
        ("employees-abc.discard", b"", MarkerAction.DISCARD),
        ("employees-abc.discard", b'{"by": "jdoe", "reason": "wrong file"}', MarkerAction.DISCARD),
        ("employees-abc.discard", b'{"action": "discard"}', MarkerAction.DISCARD),
        # not understood: nothing is done (it might have meant either)
        ("employees-abc", b'{"action": "dicsard"}', MarkerAction.INVALID),
        ("employees-abc", b'{"action": 1}', MarkerAction.INVALID),
        ("employees-abc", b"discard", MarkerAction.INVALID),
        ("employees-abc", b'["discard"]', MarkerAction.INVALID),
        ("employees-abc.discard", b'{"action": "approve"}', MarkerAction.INVALID),
        ("employees-abc.discard", b"not json", MarkerAction.INVALID),
    ],
)
def test_a_marker_asks_for_what_its_name_and_body_say(
    name: str, body: bytes, action: MarkerAction
) -> None:
    assert _marker(name, body).action is action


def test_a_marker_too_large_to_read_is_invalid_not_an_approval() -> None:
    unread = _marker("employees-abc", b"", complete=False)
    assert unread.action is MarkerAction.INVALID
    assert _marker("employees-abc", b"", complete=True).action is MarkerAction.APPROVE


def test_a_discard_marker_names_its_run_who_and_why() -> None:
    body = b'{"by": "  j  doe ", "reason": "wrong\\nfile ' + b"x" * 400 + b'"}'
    m = _marker("employees-abc.discard", body)
    assert m.run_id == "employees-abc"
    assert m.by == "j doe"
    assert m.reason is not None
    assert m.reason.startswith("wrong file x")
    assert len(m.reason) == 300
    plain = _marker("employees-abc", b'{"action": "discard", "by": 5, "reason": " "}')
    assert plain.run_id == "employees-abc"
    assert plain.by is None
    assert plain.reason is None
