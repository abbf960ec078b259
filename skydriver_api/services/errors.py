"""What a service can answer instead of a result; the app maps each to an HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class Invalid(ServiceError):
    """The request cannot run as given (unprocessable): the detail names the field."""

    status_code = 422


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The request conflicts with the record's state (ended scan, reused key, no product yet)."""

    status_code = 409


class TooLarge(ServiceError):
    status_code = 413


class Forbidden(ServiceError):
    """The caller may not ask for this (e.g. realtime priority without being an alert or an admin)."""

    status_code = 403
