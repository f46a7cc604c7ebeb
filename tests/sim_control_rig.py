"""What the control API tests share: asking a control API over HTTP."""

from __future__ import annotations

import http.client
import json
from typing import Any


def ask(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, http.client.HTTPResponse]:
    """One request to a control API; (status, parsed JSON answer, response)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if payload else None, response
