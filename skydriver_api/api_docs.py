"""What the OpenAPI document says about errors: one description and body per status, so that every
route documents the 401/403/404/409/413/422 it can answer in the same words and shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from skydriver_api.models import ErrorBody
from skyscan.skymap import exports


class ValidationIssue(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """What the API answers for an invalid request (see ``app.invalid_request``)."""

    detail: str
    errors: list[ValidationIssue] = []


_DEFAULTS: dict[int, tuple[str, type[BaseModel]]] = {
    401: ("No bearer token, or an unknown, revoked or expired one", ErrorBody),
    403: ("The token's role (or, for a scan's system token, its scan) does not allow this", ErrorBody),
    404: ("No such record; the detail names the id", ErrorBody),
    409: ("The request conflicts with the record's state; the detail says why", ErrorBody),
    413: ("The request body is larger than the configured limit", ErrorBody),
    422: ("The request is invalid and changed nothing; the detail names the field", ValidationErrorBody),
}

_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "Always `Bearer`", "schema": {"type": "string", "enum": ["Bearer"]}}
}

AUTH = (401, 403)


def error_responses(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status with its body model; ``(status, text)``
    replaces the default description with what this route means by it."""
    out: dict[int | str, dict[str, Any]] = {}
    for item in statuses:
        status, description = item if isinstance(item, tuple) else (item, _DEFAULTS[item][0])
        entry: dict[str, Any] = {"model": _DEFAULTS[status][1], "description": description}
        if status == 401:
            entry["headers"] = _WWW_AUTHENTICATE
        out[status] = entry
    return out


def product_content() -> dict[str, dict[str, Any]]:
    """The content of a product download: every exporter's media type, JSON ones as objects."""
    media_types = dict.fromkeys(map(exports.media_type, exports.FORMATS))
    binary = {"type": "string", "format": "binary"}
    return {m: {"schema": {"type": "object"} if m.endswith("json") else binary} for m in media_types}


def as_openapi_31(doc: dict[str, Any]) -> dict[str, Any]:
    """Make FastAPI's document valid OpenAPI 3.1, in place (idempotent).

    FastAPI describes an event stream with OpenAPI 3.2's ``itemSchema``, which 3.1 does not allow:
    the stream becomes a string whose frames the item schema describes (kept as ``x-itemSchema``
    for tools that read 3.2). Errors are JSON even on a streaming route, not ``text/event-stream``.
    """
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                stream = content.get("text/event-stream")
                if stream is None:
                    continue
                if status.isdigit() and int(status) >= 400:
                    content["application/json"] = content.pop("text/event-stream")
                elif "itemSchema" in stream:
                    stream["x-itemSchema"] = stream.pop("itemSchema")
                    stream["schema"] = {"type": "string", "description": "Server-Sent Events frames"}
    return doc
