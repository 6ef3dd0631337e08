"""What the API suites share: the seed meeting id, the dev token, a problem-answer check."""

from __future__ import annotations

from typing import Any

import httpx

TALKS = "moscow-tskhinvali-talks"


AUTH = {"Authorization": "Bearer dev-token"}


def assert_problem(response: httpx.Response, status: int, detail: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert detail in body.get("detail", "")
    return body
