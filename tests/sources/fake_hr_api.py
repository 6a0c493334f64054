"""A fake HR REST API on loopback for the rest-source tests.

Routes (all JSON): ``POST /token`` (client credentials ``hr-client`` / ``hr-secret``),
``/odata/workers`` (next-link paging, bearer token), ``/offset/workers``,
``/cursor/workers``, ``/basic/workers``, ``/apikey/workers``, ``/flaky/workers`` (429
then 503 then data), ``/down/workers`` (always 503), ``/foreign/workers`` (a next link to
another host), ``/redirect/workers``, ``/empty/workers``, ``/notjson/workers``,
``/expiring/workers`` (the first token is refused once).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "hr-client"
CLIENT_SECRET = "hr-secret"  # the fake API's, not a real secret
API_KEY = "k-123"

WORKERS: list[dict[str, Any]] = [
    {
        "id": f"E{i:03d}",
        "name": {"given": f"Given{i}", "family": f"Family{i}"},
        "address": {"city": "Leeds" if i % 2 else "York"},
        "active": i != 4,
        "fte": 1.0 if i % 2 else 0.5,
        "emails": [{"type": "work", "value": f"e{i}@example.com"}],
        "manager": None if i == 1 else "E001",
    }
    for i in range(1, 6)
]


@dataclass
class ApiState:
    base: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


def _page(items: list[dict[str, Any]], start: int, size: int) -> list[dict[str, Any]]:
    return items[start : start + size]


def make_handler(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _bearer_ok(self) -> bool:
            return self.headers.get("Authorization", "").startswith("Bearer tok-")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            if self.path == "/token":
                form = {k: v[0] for k, v in parse_qs(body).items()}
                if (
                    form.get("grant_type") == "client_credentials"
                    and form.get("client_id") == CLIENT_ID
                    and form.get("client_secret") == CLIENT_SECRET
                ):
                    state.tokens_issued += 1
                    self._send(200, {"access_token": f"tok-{state.tokens_issued}"})
                else:
                    self._send(401, {"error": "invalid_client"})
                return
            if self.path.startswith("/report"):
                fields = json.loads(body).get("fields", [])
                rows = [{f: w.get(f) for f in fields} for w in WORKERS]
                self._send(200, {"title": "r", "employees": rows})
                return
            self._send(404, {})

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            route = parts.path.split("/")[1]
            state.hits[route] += 1
            state.requests.append((self.path, dict(self.headers.items())))
            if route == "odata":
                if not self._bearer_ok():
                    self._send(401, {})
                    return
                skip = int(q.get("skip", "0"))
                body: dict[str, Any] = {"value": _page(WORKERS, skip, 2)}
                if skip + 2 < len(WORKERS):
                    body["@odata.nextLink"] = f"{state.base}/odata/workers?skip={skip + 2}"
                self._send(200, body)
            elif route == "relative":
                skip = int(q.get("skip", "0"))
                body = {"data": _page(WORKERS, skip, 3)}
                if skip + 3 < len(WORKERS):
                    body["next"] = f"/relative/workers?skip={skip + 3}"
                self._send(200, body)
            elif route == "offset":
                off, lim = int(q["offset"]), int(q["limit"])
                self._send(200, {"data": _page(WORKERS, off, lim)})
            elif route == "cursor":
                pos = int(q.get("cursor", "0"))
                nxt = pos + 2 if pos + 2 < len(WORKERS) else None
                self._send(200, {"items": _page(WORKERS, pos, 2), "next_cursor": nxt})
            elif route == "basic":
                expected = base64.b64encode(f"{API_KEY}:x".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    self._send(401, {})
                    return
                self._send(200, WORKERS)
            elif route == "apikey":
                if self.headers.get("X-API-Key") != API_KEY:
                    self._send(403, {})
                    return
                self._send(200, {"value": WORKERS})
            elif route == "flaky":
                n = state.hits["flaky"]
                if n == 1:
                    self._send(429, {}, {"Retry-After": "7"})
                elif n == 2:
                    self._send(503, {})
                else:
                    self._send(200, {"value": WORKERS})
            elif route == "down":
                self._send(503, {})
            elif route == "foreign":
                self._send(
                    200,
                    {"value": WORKERS[:1], "next": "https://elsewhere.example.net/steal?page=2"},
                )
            elif route == "redirect":
                self.send_response(302)
                self.send_header("Location", "https://elsewhere.example.net/")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif route == "empty":
                self._send(200, {"value": []})
            elif route == "notjson":
                self._send(200, b"<html>maintenance</html>")
            elif route == "expiring":
                if self.headers.get("Authorization") == "Bearer tok-1":
                    self._send(401, {})
                    return
                if not self._bearer_ok():
                    self._send(401, {})
                    return
                self._send(200, {"value": WORKERS})
            elif route == "binaryish":
                self._send(200, {"value": [{"id": "E1", "score": None, "tags": []}]})
            else:
                self._send(404, {})

    return Handler


@contextmanager
def running_api() -> Iterator[ApiState]:
    state = ApiState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
