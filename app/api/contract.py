"""Each endpoint declared once: its query parameters and answers are pydantic models.

From that one declaration follow the parsing and validation of the query string, the
``{"error": {"code", "message", "field"}}`` answers for bad input, and the OpenAPI 3.1
document (``openapi_document``). Handlers receive a validated, typed ``args`` object
and return a body built by app.api.serialize.
"""
from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.json_schema import models_json_schema

from app.api import serialize
from app.api.errors import ApiError


class Args(BaseModel):
    """Base of every query model: unknown parameters are ignored, values are read-only."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, str_strip_whitespace=True)


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


ENDPOINTS: list[Endpoint] = []

# Errors any endpoint may answer; each endpoint adds its own.
BAD_INPUT = {400: "Bad input: the error names the parameter."}
STORE_DOWN = {503: "The station database is unavailable (or not set up); try again shortly."}


def endpoint(bp: Blueprint, rule: str, *, query: type[Args] | None, body: type[BaseModel], summary: str,
             errors: dict[int, str] | None = None, media_type: str = "application/json",
             cache_seconds: int = 0):
    """Register a GET route whose handler takes ``args`` (a ``query`` instance) and path values."""

    def register(handler: Callable[..., tuple[dict, int] | dict]):
        declared = Endpoint(
            rule=rule, name=handler.__name__, summary=summary,
            description=(handler.__doc__ or "").strip(), query=query, body=body,
            errors={**(BAD_INPUT if query is not None else {}), **(errors or {})},
            media_type=media_type, cache_seconds=cache_seconds,
        )

        @functools.wraps(handler)
        def view(**path_values):
            args = parse(query, request.args) if query is not None else None
            answer = handler(args, **path_values) if query is not None else handler(**path_values)
            response = serialize.json_response(answer, mimetype=media_type)
            if cache_seconds:
                response.cache_control.public = True
                response.cache_control.max_age = cache_seconds
            else:  # answers depend on "now" and on live data
                response.cache_control.no_cache = True
            return response

        bp.add_url_rule(rule, handler.__name__, view, methods=["GET"])
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


# -- the OpenAPI document ----------------------------------------------------------

_PATH_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def openapi_document(prefix: str, info: dict, error_model: type[BaseModel]) -> dict:
    """OpenAPI 3.1 for every declared endpoint, from the same models that validate and answer."""
    models = {e.body for e in ENDPOINTS} | {error_model}
    _, defs = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict] = {}
    for e in ENDPOINTS:
        path = _PATH_PARAM.sub(lambda m: "{" + ("id" if m.group(2).endswith("id") else m.group(2)) + "}", e.rule)
        parameters = [_path_parameter(m) for m in _PATH_PARAM.finditer(e.rule)]
        if e.query is not None:
            parameters += _query_parameters(e.query)
        responses = {"200": {"description": "OK", "content": {e.media_type: {
            "schema": {"$ref": f"#/components/schemas/{e.body.__name__}"}}}}}
        for status, text in sorted(e.errors.items()):
            responses[str(status)] = {"description": text, "content": {"application/json": {"schema": _ERROR_REF}}}
        operation = {"operationId": e.name, "summary": e.summary, "responses": responses}
        if e.description:
            operation["description"] = e.description
        if parameters:
            operation["parameters"] = parameters
        paths[path.removeprefix(prefix)] = {"get": operation}
    return {
        "openapi": "3.1.0",
        "info": info,
        "servers": [{"url": prefix}],
        "paths": paths,
        "components": {"schemas": defs["$defs"]},
    }


def _path_parameter(match) -> dict:
    converter, name = match.group(1), match.group(2)
    schema: dict[str, Any] = {"type": "string"}
    if converter == "int":
        schema = {"type": "integer", "minimum": 0, "maximum": 9223372036854775807}
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
