"""Every API error is JSON: {"error": {"code", "message", "field"}}."""
from __future__ import annotations

from flask import jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None):
    body = {"error": {"code": code, "message": message, "field": field}}
    return jsonify(body), status


def register(app, prefix: str) -> None:
    """JSON errors for the API; pages keep Flask's HTML errors."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith(prefix):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        app.logger.error("database unavailable on %s: %s", request.path, exc.orig)
        if not request.path.startswith(prefix):
            return "Service Unavailable", 503
        return error_response(503, "unavailable", "The station database is unavailable; try again shortly.")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        if not request.path.startswith(prefix):
            return "Internal Server Error", 500
        return error_response(500, "internal_error", "Something went wrong on our side.")
