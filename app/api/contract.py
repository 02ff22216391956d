"""Each endpoint declared once: its query parameters, JSON request body and answers are pydantic models.

From that one declaration follow the parsing and validation of the query string and the
body, the ``{"error": {"code", "message", "field"}}`` answers for bad input, and the OpenAPI
3.1 document (``openapi_document``). Handlers receive the caller (endpoints that need one),
a validated, typed ``args`` object and ``payload`` (the body), and return a body built by
app.api.serialize.
"""
from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import models_json_schema

from app.api import serialize
from app.api.errors import ApiError


class Args(BaseModel):
    """Base of every query model: unknown parameters are ignored, values are read-only."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)


class Payload(BaseModel):
    """Base of every JSON request body: unknown fields are refused (a misspelt field must not be
    silently ignored) and nothing is coerced (``"true"`` is not ``true``, ``"5"`` is not ``5``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              str_strip_whitespace=True)


@dataclass(frozen=True)
class Endpoint:
    rule: str
    name: str
    summary: str
    description: str
    query: type[Args] | None
    body: type[BaseModel]  # the 200 answer
    errors: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    cache_seconds: int = 0  # >0: the answer may be cached this long (vocabulary, the document)
    method: str = "GET"
    payload: type[Payload] | None = None  # the JSON request body
    status: int = 200  # of a successful answer
    auth: Callable[[], Any] | None = None  # says who is calling, or answers 401 itself
    also: dict[int, str] = field(default_factory=dict)  # other successful statuses (same body), e.g. 200 beside 201
    downloads: dict[str, str] = field(default_factory=dict)  # other media types of the answer (files) -> what
    max_body_bytes: int = 0  # the JSON body's limit (0: MAX_PAYLOAD_BYTES)

    @property
    def secured(self) -> bool:
        return self.auth is not None


ENDPOINTS: list[Endpoint] = []
# Models a body refers to by $ref without validating through them (e.g. the items of a batch,
# which are validated one by one so that one bad item does not refuse the rest).
REFERENCED: list[type[BaseModel]] = []


def referenced(model: type[BaseModel]) -> dict:
    """A $ref to ``model`` in the document's components (which then holds its schema)."""
    REFERENCED.append(model)
    return {"$ref": f"#/components/schemas/{model.__name__}"}

# Errors any endpoint may answer; each endpoint adds its own.
BAD_INPUT = {400: "Bad input: the error names the parameter."}
STORE_DOWN = {503: "The station database is unavailable (or not set up); try again shortly."}
UNAUTHORIZED = {401: "No credentials, or a token that is unknown, expired or revoked (see WWW-Authenticate)."}
NOT_JSON = {413: "The body is too large.", 415: "The body must be JSON (Content-Type: application/json)."}
# Staff bodies are a few fields; anything bigger is a mistake or an attack.
MAX_PAYLOAD_BYTES = 64 * 1024
# How the secured endpoints accept credentials (OpenAPI security schemes).
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "A staff token from `flask --app wsgi tokens create EMAIL`; no CSRF token needed."},
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session",
                      "description": "The staff pages' login session. POST, PUT and PATCH must also send the "
                                     "session's CSRF token in the X-CSRFToken header (else 400 csrf_failed)."},
}


def endpoint(bp: Blueprint, rule: str, *, query: type[Args] | None, body: type[BaseModel], summary: str,
             errors: dict[int, str] | None = None, media_type: str = "application/json",
             cache_seconds: int = 0, method: str = "GET", payload: type[Payload] | None = None,
             status: int = 200, auth: Callable[[], Any] | None = None, also: dict[int, str] | None = None,
             downloads: dict[str, str] | None = None, max_body_bytes: int = 0):
    """Register a route. Its handler takes, in this order: the caller (``auth()``'s answer) when
    ``auth`` is given, ``args`` (a ``query`` instance) when ``query`` is, the body (a ``payload``
    instance) when ``payload`` is, then the path values. Who is calling is settled first: an
    anonymous caller learns nothing from validation errors. A handler of an endpoint with
    ``downloads`` may return a finished Response in one of those media types (a file)."""

    def register(handler: Callable[..., tuple[dict, int] | dict]):
        declared = Endpoint(
            rule=rule, name=handler.__name__, summary=summary,
            description=(handler.__doc__ or "").strip(), query=query, body=body,
            errors={**(UNAUTHORIZED if auth is not None else {}),
                    **(BAD_INPUT if query is not None or payload is not None else {}),
                    **(NOT_JSON if payload is not None else {}), **(errors or {})},
            media_type=media_type, cache_seconds=cache_seconds, method=method, payload=payload,
            status=status, auth=auth, also=also or {}, downloads=downloads or {},
            max_body_bytes=max_body_bytes,
        )

        @functools.wraps(handler)
        def view(**path_values):
            inputs = [auth()] if auth is not None else []
            if query is not None:
                inputs.append(parse(query, request.args))
            if payload is not None:
                inputs.append(parse_body(payload, max_body_bytes or MAX_PAYLOAD_BYTES))
            answer = handler(*inputs, **path_values)
            if isinstance(answer, Response):  # a download (only endpoints that declare them return one)
                response = answer
            else:
                response = serialize.json_response(answer, status, mimetype=media_type)
            if cache_seconds:
                response.cache_control.public = True
                response.cache_control.max_age = cache_seconds
            elif auth is not None:  # one caller's view of internal data: kept by no cache at all
                response.cache_control.no_store = True
            else:  # answers depend on "now" and on live data
                response.cache_control.no_cache = True
            return response

        bp.add_url_rule(rule, handler.__name__, view, methods=[method])
        ENDPOINTS.append(declared)
        return handler

    return register


# -- parsing and errors ----------------------------------------------------------


def parse(model: type[Args], multidict) -> Args:
    """Validate the query string into ``model``; the first problem becomes a 400 naming its parameter.

    An empty value is no value: missing where the parameter is required, bad otherwise.
    """
    raw = {}
    for name, value in multidict.items():
        if value.strip() == "" and name in model.model_fields:
            if model.model_fields[name].is_required():
                raise ApiError(400, "missing_parameter", f"'{name}' is required.", name)
            raise ApiError(400, "invalid_parameter", f"'{name}' is empty; leave it out instead.", name)
        raw[name] = value
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _to_api_error(model, exc.errors()[0]) from None


def _to_api_error(model: type[Args], error: dict) -> ApiError:
    name = str(error["loc"][0]) if error["loc"] else None
    kind = error["type"]
    info = model.model_fields.get(name) if name else None
    if kind == "missing":
        return ApiError(400, "missing_parameter", f"'{name}' is required.", name)
    if kind in ("out_of_range", "invalid_parameter"):  # our own validators name the problem
        return ApiError(400, kind, error["msg"], name)
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        lo, hi = _bounds(info)
        return ApiError(400, "out_of_range", f"'{name}' must be between {lo:g} and {hi:g}.", name)
    if kind in ("literal_error", "enum"):
        allowed = ", ".join(_choices(info.annotation if info else None))
        if not allowed:  # our own validators say what is allowed
            return ApiError(400, "invalid_parameter", f"'{name}' {error['msg']}.", name)
        if len(error["loc"]) > 1:  # an item of a comma list
            return ApiError(400, "invalid_parameter", f"Unknown {name} {error['input']!r}; known: {allowed}.", name)
        return ApiError(400, "invalid_parameter", f"'{name}' must be one of {allowed}.", name)
    if kind == "finite_number":
        return ApiError(400, "invalid_parameter", f"'{name}' must be a finite number.", name)
    if kind.startswith("int"):
        return ApiError(400, "invalid_parameter", f"'{name}' must be a whole number, got {_shown(error)}.", name)
    if kind.startswith("float") or kind.startswith("decimal"):
        return ApiError(400, "invalid_parameter", f"'{name}' must be a number, got {_shown(error)}.", name)
    return ApiError(400, "invalid_parameter", f"'{name}' is not valid: {error['msg']}.", name)


def _bounds(info) -> tuple[float, float]:
    """The declared (ge, le) of a field, also when they sit inside Optional[Annotated[...]]."""
    lo, hi = float("-inf"), float("inf")
    pending = [*getattr(info, "metadata", ()), getattr(info, "annotation", None)]
    while pending:
        meta = pending.pop()
        if getattr(meta, "ge", None) is not None:
            lo = meta.ge
        if getattr(meta, "le", None) is not None:
            hi = meta.le
        pending.extend(getattr(meta, "metadata", ()) or ())  # a FieldInfo carries Ge/Le here
        pending.extend(typing.get_args(meta) if typing.get_origin(meta) is not None else ())
    return lo, hi


def _choices(annotation) -> list[str]:
    """The values a Literal (possibly inside Optional, a tuple or Annotated) allows."""
    if annotation is None:
        return []
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    for arg in typing.get_args(annotation):
        found = _choices(arg)
        if found:
            return found
    return []


def _shown(error: dict) -> str:
    return repr(str(error.get("input", ""))[:40])


def parse_body(model: type[Payload], limit: int = MAX_PAYLOAD_BYTES) -> Payload:
    """The request's JSON body as ``model``: 415 unless it is JSON, 413 when bigger than ``limit``
    bytes, else the first problem as a 400 naming its field (``results.floor_clean`` for a nested one)."""
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "Send the body as JSON, with Content-Type: application/json.")
    # The declared length first, so a big body is not read; then what came (a body without a length).
    data = request.get_data(cache=False) if (request.content_length or 0) <= limit else None
    if data is None or len(data) > limit:
        raise ApiError(413, "too_large", f"The body must be at most {limit // 1024} KB.")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise _body_error(model, exc.errors(include_url=False)[0]) from None


def validate_item(model: type[Payload], item: Any, where: str) -> Payload:
    """One item of a batch as ``model``; its first problem as the ApiError ``parse_body`` would
    give, its field named from ``where`` (e.g. ``stations.3.count``)."""
    try:  # as JSON again: a body's strict rules are those of JSON (a time is a string there)
        # (json, not orjson: it keeps a NaN a NaN, which the model then refuses, rather than null)
        return model.model_validate_json(json.dumps(item, ensure_ascii=False))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise _body_error(model, {**error, "loc": (where, *error["loc"])}) from None


def _body_error(model: type[Payload], error: dict) -> ApiError:
    kind, loc = error["type"], [str(part) for part in error["loc"]]
    name = ".".join(loc) or None
    if kind == "json_invalid":
        return ApiError(400, "invalid_json", f"The body is not valid JSON ({error['ctx']['error']}).")
    if not loc:  # the body as a whole: e.g. a list or a string instead of an object
        return ApiError(400, "invalid_json", "The body must be a JSON object.")
    if kind == "missing":
        return ApiError(400, "missing_parameter", f"'{name}' is required.", name)
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields) if len(loc) == 1 else ""
        return ApiError(400, "invalid_parameter", f"Unknown field '{name}'" + (f"; known: {known}." if known else "."),
                        name)
    if kind in ("literal_error", "enum"):
        return ApiError(400, "invalid_parameter", f"'{name}' must be {error['ctx']['expected']}.", name)
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return ApiError(400, "out_of_range", f"'{name}': {error['msg']}.", name)
    return ApiError(400, "invalid_parameter", f"'{name}' is not valid: {error['msg']}.", name)


# -- the OpenAPI document ----------------------------------------------------------

_PATH_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def openapi_document(prefix: str, info: dict, error_model: type[BaseModel]) -> dict:
    """OpenAPI 3.1 for every declared endpoint, from the same models that validate and answer."""
    models = {e.body for e in ENDPOINTS} | {error_model}
    payloads = {e.payload for e in ENDPOINTS if e.payload is not None} | set(REFERENCED)
    _, defs = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)]
        + [(m, "validation") for m in sorted(payloads, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict] = {}
    for e in ENDPOINTS:
        path = _PATH_PARAM.sub(lambda m: "{" + ("id" if m.group(2).endswith("id") else m.group(2)) + "}", e.rule)
        parameters = [_path_parameter(m) for m in _PATH_PARAM.finditer(e.rule)]
        if e.query is not None:
            parameters += _query_parameters(e.query)
        answer = {e.media_type: {"schema": {"$ref": f"#/components/schemas/{e.body.__name__}"}}}
        files = {media: {"schema": {"type": "string", "format": "binary", "description": what}}
                 for media, what in e.downloads.items()}
        responses = {str(e.status): {"description": "OK" if e.status == 200 else "Created",
                                     "content": {**answer, **files}}}
        for status, text in sorted(e.also.items()):
            responses[str(status)] = {"description": text, "content": answer}
        for status, text in sorted(e.errors.items()):
            responses[str(status)] = {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}}
        operation = {"operationId": e.name, "summary": e.summary, "responses": responses}
        if e.description:
            operation["description"] = e.description
        if parameters:
            operation["parameters"] = parameters
        if e.payload is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{e.payload.__name__}"}}}}
        if e.secured:
            operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        paths.setdefault(path.removeprefix(prefix), {})[e.method.lower()] = operation
    components: dict[str, Any] = {"schemas": defs["$defs"]}
    if any(e.secured for e in ENDPOINTS):
        components["securitySchemes"] = SECURITY_SCHEMES
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": prefix}],
        "paths": paths,
        "components": components,
    }


def _path_parameter(match) -> dict:
    converter, name = match.group(1), match.group(2)
    schema: dict[str, Any] = {"type": "string"}
    if converter == "int":
        schema = {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}
    elif converter == "any":  # <any(a, b):name>: one of the listed words
        listed = re.search(r"\(([^)]*)\)", match.group(0)).group(1)
        schema = {"type": "string", "enum": [word.strip().strip("'\"") for word in listed.split(",")]}
    return {"name": "id" if name.endswith("id") else name, "in": "path", "required": True, "schema": schema}


def _query_parameters(model: type[Args]) -> list[dict]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A query parameter is absent rather than null: document the value's own type.
        if prop.get("default", ...) in (None, []):  # absent means "no filter", not an empty list
            del prop["default"]
        options = [o for o in prop.get("anyOf", ()) if o != {"type": "null"}]
        if "anyOf" in prop and len(options) == 1:
            del prop["anyOf"]
            prop.update(options[0])
            description = prop.pop("description", description)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        if prop.get("type") == "array":  # comma lists: kind=toilet,water_point
            param.update(style="form", explode=False)
        out.append(param)
    return out
