"""The OpenAPI 3.1 description of /api/v1, built from the same vocabulary the API checks."""
from __future__ import annotations

from app.geo.coordsys import COORDSYS
from app.stations.vocabulary import ACCESS, AMENITIES, KINDS


def _param(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _ref(name):
    return {"$ref": f"#/components/parameters/{name}"}


def _json(schema_ref, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": schema_ref}}}}


_ERRORS = {
    "400": _json("#/components/schemas/Error", "Bad input: the body names the parameter."),
}


def openapi_document() -> dict:
    station_props = {
        "id": {"type": "integer"},
        "source": {"type": "string"},
        "source_id": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": list(KINDS)},
        "lat": {"type": "number"},
        "lng": {"type": "number"},
        "amenities": {"type": "array", "items": {"type": "string", "enum": list(AMENITIES)},
                      "description": "Amenities the station has."},
        "amenities_no": {"type": "array", "items": {"type": "string", "enum": list(AMENITIES)},
                         "description": "Amenities it is known not to have; the rest are unknown."},
        "opening_hours": {"type": ["string", "null"], "description": "OSM opening_hours syntax."},
        "open_state": {"type": "string", "enum": ["open", "closed", "unknown"]},
        "next_change": {"type": ["string", "null"], "format": "date-time"},
        "address": {"type": ["string", "null"]},
        "operator": {"type": ["string", "null"]},
        "access": {"type": "string", "enum": list(ACCESS)},
        "fee": {"type": ["string", "null"], "enum": ["yes", "no", None]},
        "batteries_available": {"type": ["integer", "null"],
                                "description": "Charged batteries in a swap cabinet, when reported."},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Yizhan (驿站) station finder API",
            "version": "1.0.0",
            "description": (
                "Find public toilets, outdoor-worker rest stations, drinking water, battery-swap "
                "cabinets and e-bike charging. Coordinates are given and returned in `coordsys` "
                "(wgs84 default; gcj02 for Amap/Tencent/WeChat; bd09 for Baidu). Distances are "
                "WGS-84 ellipsoid geodesics in metres."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "paths": {
            "/stations/nearest": {"get": {
                "summary": "Nearest active stations, nearest first (ties by id).",
                "parameters": [
                    _param("lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude.", True),
                    _param("lng", {"type": "number", "minimum": -180, "maximum": 180}, "Longitude.", True),
                    _ref("coordsys"), _ref("out_coordsys"),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}, "How many."),
                    _ref("kind"), _ref("amenity"),
                    _param("open_now", {"type": "string", "enum": ["0", "1"]}, "Only stations open at `at`."),
                    _param("include_unknown", {"type": "string", "enum": ["0", "1"]},
                           "With open_now: also stations whose hours are unknown."),
                    _ref("at"),
                    _param("max_distance", {"type": "number", "minimum": 0}, "Metres."),
                ],
                "responses": {"200": _json("#/components/schemas/NearestResults"), **_ERRORS},
            }},
            "/stations": {"get": {
                "summary": "Active stations in a map area, as GeoJSON.",
                "parameters": [
                    _param("bbox", {"type": "string", "example": "113.10,27.80,113.20,27.88"},
                           "minLng,minLat,maxLng,maxLat in `coordsys`.", True),
                    _ref("coordsys"), _ref("kind"), _ref("amenity"),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500},
                           "At most this many features; `truncated` says when more matched."),
                ],
                "responses": {"200": {"description": "GeoJSON FeatureCollection",
                                      "content": {"application/geo+json": {"schema": {"type": "object"}},
                                                  "application/json": {"schema": {"type": "object"}}}},
                              **_ERRORS},
            }},
            "/stations/{id}": {"get": {
                "summary": "Everything known about one station.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    _ref("coordsys"), _ref("out_coordsys"), _ref("at"),
                ],
                "responses": {"200": _json("#/components/schemas/Station"),
                              "404": _json("#/components/schemas/Error", "No such station."), **_ERRORS},
            }},
            "/service-circle": {"get": {
                "summary": "The 15-minute service circle: what can be reached from a point, on the road network.",
                "description": (
                    "`method` is `network` when the point is within 300 m of the road network (travel "
                    "times along it, snap legs included); otherwise `radius`, a straight-line circle "
                    "labelled as such, with `reason` `off_network` or `no_network`."
                ),
                "parameters": [
                    _param("lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude.", True),
                    _param("lng", {"type": "number", "minimum": -180, "maximum": 180}, "Longitude.", True),
                    _ref("coordsys"), _ref("out_coordsys"), _ref("minutes"), _ref("mode"), _ref("kind"), _ref("amenity"),
                    _param("open_now", {"type": "string", "enum": ["0", "1"]}, "Only stations open at `at`."),
                    _param("include_unknown", {"type": "string", "enum": ["0", "1"]},
                           "With open_now: also stations whose hours are unknown."),
                    _ref("at"),
                    _param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "How many."),
                ],
                "responses": {"200": _json("#/components/schemas/ServiceCircle"), **_ERRORS},
            }},
            "/stations/{id}/service-area": {"get": {
                "summary": "A station's precomputed service area: where it can be reached from in `minutes`.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                    _ref("coordsys"), _ref("minutes"), _ref("mode"),
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                              "404": _json("#/components/schemas/Error", "No such station, or not computed yet."),
                              **_ERRORS},
            }},
            "/stations/serving": {"get": {
                "summary": "Which stations serve this address (it lies in their precomputed service area).",
                "parameters": [
                    _param("lat", {"type": "number", "minimum": -90, "maximum": 90}, "Latitude.", True),
                    _param("lng", {"type": "number", "minimum": -180, "maximum": 180}, "Longitude.", True),
                    _ref("coordsys"), _ref("minutes"), _ref("mode"), _ref("kind"), _ref("amenity"),
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, **_ERRORS},
            }},
            "/coverage": {"get": {
                "summary": "For planners: the area served by matching stations in a box, what is unserved, "
                           "and the share of road length served.",
                "parameters": [
                    _param("bbox", {"type": "string"}, "minLng,minLat,maxLng,maxLat in `coordsys`.", True),
                    _ref("coordsys"), _ref("minutes"), _ref("mode"), _ref("kind"), _ref("amenity"),
                ],
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, **_ERRORS},
            }},
            "/wechat/jssdk-config": {"get": {
                "summary": "wx.config values for a page opened inside WeChat (404 when not configured).",
                "parameters": [_param("url", {"type": "string"}, "The page URL without its #fragment.", True)],
                "responses": {
                    "200": {"description": "appId, timestamp, nonceStr, signature", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "appId": {"type": "string"}, "timestamp": {"type": "integer"},
                            "nonceStr": {"type": "string"}, "signature": {"type": "string"},
                        }}}}},
                    "404": _json("#/components/schemas/Error", "WeChat is not configured."),
                    "502": _json("#/components/schemas/Error", "WeChat's API did not answer."),
                    **_ERRORS,
                },
            }},
            "/meta": {"get": {
                "summary": "Kinds, amenities, access values with zh-CN and en labels.",
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}}},
            }},
            "/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}}},
            }},
        },
        "components": {
            "parameters": {
                "coordsys": _param("coordsys", {"type": "string", "enum": list(COORDSYS), "default": "wgs84"},
                                   "Coordinate system of the input and the output."),
                "out_coordsys": _param("out_coordsys", {"type": "string", "enum": list(COORDSYS)},
                                       "Coordinate system of the answer, if not `coordsys` (e.g. a GCJ-02 "
                                       "position from WeChat shown on a WGS-84 map)."),
                "kind": _param("kind", {"type": "string"}, f"Comma list, any of: {', '.join(KINDS)}."),
                "amenity": _param("amenity", {"type": "string"}, f"Comma list, all of: {', '.join(AMENITIES)}."),
                "minutes": _param("minutes", {"type": "integer", "minimum": 1, "maximum": 30, "default": 15},
                                  "Travel time budget."),
                "mode": _param("mode", {"type": "string", "enum": ["walk", "ebike"], "default": "walk"},
                               "Walking (4.8 km/h) or e-bike (15 km/h) by default; speeds are configurable."),
                "at": _param("at", {"type": "string", "format": "date-time"},
                             "ISO 8601 time for the open state (default now; no offset means the service time zone)."),
            },
            "schemas": {
                "Station": {"type": "object", "properties": station_props},
                "NearestResults": {"type": "object", "properties": {
                    "coordsys": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "count": {"type": "integer"},
                    "results": {"type": "array", "items": {"allOf": [
                        {"$ref": "#/components/schemas/Station"},
                        {"type": "object", "properties": {"distance_m": {"type": "number"}}},
                    ]}},
                }},
                "ServiceCircle": {"type": "object", "properties": {
                    "method": {"type": "string", "enum": ["network", "radius"]},
                    "reason": {"type": ["string", "null"], "enum": ["off_network", "no_network", None]},
                    "mode": {"type": "string"},
                    "minutes": {"type": "number"},
                    "speed_kmh": {"type": "number"},
                    "polygon": {"type": "object", "description": "GeoJSON geometry in `coordsys`."},
                    "area_km2": {"type": "number"},
                    "results": {"type": "array", "items": {"allOf": [
                        {"$ref": "#/components/schemas/Station"},
                        {"type": "object", "properties": {
                            "travel_minutes": {"type": "number"},
                            "network_distance_m": {"type": ["number", "null"]},
                            "distance_m": {"type": "number"},
                        }},
                    ]}},
                }},
                "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                }}}},
            },
        },
    }
