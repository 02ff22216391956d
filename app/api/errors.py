"""Every API error is JSON: {"error": {"code", "message", "field"}}; this is where they are made."""
from __future__ import annotations

from flask import request
from sqlalchemy.exc import OperationalError, ProgrammingError, TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, default_exceptions

from app.logs import redact
from app.ops.errors import OpsError


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 retry_after_s: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after_s = retry_after_s


def _schema_missing(exc: ProgrammingError) -> bool:
    """PostgreSQL's "no such table/column" (SQLite reports it as an OperationalError)."""
    return getattr(exc.orig, "sqlstate", None) in ("42P01", "42703")


def register(app, prefix: str) -> None:
    """JSON errors for the API; pages keep Flask's HTML errors."""
    from app.api.serialize import error, json_response

    def answer(status: int, code: str, message: str, field: str | None = None):
        return json_response(error(code, message, field), status)

    def unavailable(exc, cause: str):
        # The cause goes to the log only: answers never show SQL or connection strings.
        app.logger.error("database unavailable on %s (%s): %s", redact(request.path), cause, getattr(exc, "orig", exc))
        if not request.path.startswith(prefix):
            return "Service Unavailable", 503
        response = answer(503, "unavailable", "The station database is unavailable; try again shortly.")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = answer(exc.status, exc.code, exc.message, exc.field)
        if exc.retry_after_s:
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.errorhandler(OpsError)
    def _ops_error(exc: OpsError):
        # The operations service says which answer it is (status, code, field); this writes it.
        if not request.path.startswith(prefix):  # a page that did not handle it: its plain HTTP error
            return default_exceptions[exc.status](exc.message)
        return answer(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith(prefix):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return answer(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        return unavailable(exc, "unreachable, timed out, or schema missing")

    @app.errorhandler(PoolTimeout)
    def _pool_exhausted(exc: PoolTimeout):
        return unavailable(exc, "no free connection in the pool")

    @app.errorhandler(ProgrammingError)
    def _schema_not_there(exc: ProgrammingError):
        if _schema_missing(exc):
            return unavailable(exc, "schema missing: run `flask --app wsgi db upgrade`")
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s", redact(request.path))
        if not request.path.startswith(prefix):
            return "Internal Server Error", 500
        return answer(500, "internal_error", "Something went wrong on our side.")
