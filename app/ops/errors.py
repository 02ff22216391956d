"""Errors of the operations layer, one class per answer. The JSON API writes them in its
``{"error": {"code", "message", "field"}}`` envelope and Open311 as ``[{"code", "description"}]``;
the service only says which it is."""
from __future__ import annotations


class OpsError(Exception):
    status = 400
    code = "invalid_parameter"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(OpsError):
    status, code = 400, "invalid_parameter"


class Unauthorized(OpsError):
    status, code = 401, "unauthorized"


class Forbidden(OpsError):
    status, code = 403, "forbidden"


class NotFound(OpsError):
    status, code = 404, "not_found"


class Conflict(OpsError):
    status, code = 409, "conflict"


class TooLarge(OpsError):
    status, code = 413, "too_large"
