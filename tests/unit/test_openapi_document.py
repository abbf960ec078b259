"""The OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), with the bearer scheme, the
error responses each route can give, enums for formats and states, and the real media types."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from skydriver_api.app import create_app
from skydriver_api.settings import ApiSettings
from skyscan.records.scan import SCAN_STATES
from skyscan.skymap.exports import FORMATS, media_type


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(ApiSettings(), reconcile=False).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_the_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_bearer_security_and_401_403_on_every_protected_route(doc: dict[str, Any]) -> None:
    (scheme,) = doc["components"]["securitySchemes"].items()
    assert scheme[0] == "HTTPBearer" and (scheme[1]["type"], scheme[1]["scheme"]) == ("http", "bearer")
    public = {"/healthz", "/readyz", "/metrics", "/api/v1/recos"}
    protected = [(m, p, op) for m, p, op in operations(doc) if p not in public]
    assert len(protected) >= 18
    for method, path, op in protected:
        assert op["security"] == [{"HTTPBearer": []}], (method, path)
        responses = op["responses"]
        assert responses["401"]["headers"]["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"], (method, path)
        if path != "/api/v1/whoami":  # every token may ask who it is
            assert "403" in responses, (method, path)
    for _, path, op in operations(doc):
        if path in public:
            assert "security" not in op and "401" not in op["responses"], path


def test_errors_are_documented_where_routes_give_them(doc: dict[str, Any]) -> None:
    by_route = {(m, p): op["responses"] for m, p, op in operations(doc)}
    for (method, path), responses in by_route.items():
        if "{" in path:
            assert "404" in responses, (method, path)
        if method == "POST":
            assert {"413", "422"} <= set(responses), (method, path)
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/json"], (method, path, status)
                schema = response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                assert schema == ("ValidationErrorBody" if status == "422" else "ErrorBody"), (path, status)
    conflicts = {key for key, responses in by_route.items() if "409" in responses}
    assert conflicts == {
        ("POST", "/api/v1/scans"),
        ("GET", "/api/v1/scans/{scan_id}/result"),
        ("POST", "/api/v1/scans/{scan_id}/workers"),
        ("POST", "/api/v1/alerts"),
    }


def test_formats_and_states_are_enums(doc: dict[str, Any]) -> None:
    result = doc["paths"]["/api/v1/scans/{scan_id}/result"]["get"]
    (fmt,) = [p for p in result["parameters"] if p["name"] == "format"]
    assert fmt["schema"]["enum"] == list(FORMATS) and fmt["schema"]["default"] == "json"
    schemas = doc["components"]["schemas"]
    for model in ("ScanStatus", "ScanCreated"):
        assert schemas[model]["properties"]["state"]["enum"] == list(SCAN_STATES), model
    assert set(result["responses"]["200"]["content"]) == {media_type(f) for f in FORMATS}


def test_media_types(doc: dict[str, Any]) -> None:
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    events = doc["paths"]["/api/v1/scans/{scan_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"] and events["text/event-stream"]["schema"]["type"] == "string"
    download = doc["paths"]["/api/v1/catalogs/{catalog_id}/download"]["get"]["responses"]["200"]["content"]
    assert "application/zip" in download
    assert "/" not in doc["paths"] and not any(p.startswith("/static") for p in doc["paths"])
