"""What the OpenAPI document says beyond the routes: problem responses and links."""

from __future__ import annotations

from typing import Any

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def problem_response(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for a problem+json answer."""
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


#: Answers every /v1 operation may give, documented in the OpenAPI schema.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_response("A body that cannot be parsed at all (not UTF-8 JSON)"),
    401: problem_response("No or unknown bearer token"),
    404: problem_response("No such meeting, subscriber or delivery"),
    409: problem_response("Impossible transition, taken id, or a config-file record"),
    413: problem_response("Body too large"),
    422: problem_response("Invalid request"),
    429: problem_response("Too many requests; see Retry-After"),
}


def links(target: str, parameter: str, expression: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links from a response to the operations that take its id (stateful tests and
    clients follow them: a created meeting -> read, patch, retire, status, history)."""
    return {
        f"{operation}_{target}": {
            "operationId": operation,
            "parameters": {parameter: expression},
        }
        for operation in operations
    }


MEETING_OPERATIONS = ("read_meeting", "patch_meeting", "push_status", "meeting_history")


def created(description: str, links: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The documented success response of a create, with its links."""
    return {201: {"description": description, "links": links}}
