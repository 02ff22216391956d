"""Query-string parsing: every bad value becomes a 400 naming the parameter."""
from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from app.api.errors import ApiError
from app.geo.coordsys import COORDSYS, WGS84, to_wgs84
from app.stations.vocabulary import AMENITIES, KINDS

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bad(field: str, message: str, code: str = "invalid_parameter") -> ApiError:
    return ApiError(400, code, message, field)


def _raw(args, name: str, required: bool) -> str | None:
    value = args.get(name)
    if value is None or value.strip() == "":
        if required:
            raise _bad(name, f"'{name}' is required.", "missing_parameter")
        return None
    return value.strip()


def number(args, name: str, lo: float, hi: float, required: bool = True, default=None) -> float | None:
    raw = _raw(args, name, required)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, f"'{name}' must be a number, got {raw[:40]!r}.") from None
    if not math.isfinite(value):
        raise _bad(name, f"'{name}' must be a finite number.")
    if not lo <= value <= hi:
        raise _bad(name, f"'{name}' must be between {lo:g} and {hi:g}.", "out_of_range")
    return value


def integer(args, name: str, lo: int, hi: int, default: int) -> int:
    raw = _raw(args, name, False)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(name, f"'{name}' must be a whole number, got {raw[:40]!r}.") from None
    if not lo <= value <= hi:
        raise _bad(name, f"'{name}' must be between {lo} and {hi}.", "out_of_range")
    return value


def flag(args, name: str) -> bool:
    raw = (args.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise _bad(name, f"'{name}' must be 1 or 0.")


def coordsys(args) -> str:
    raw = (args.get("coordsys") or WGS84).strip().lower()
    if raw not in COORDSYS:
        raise _bad("coordsys", f"'coordsys' must be one of {', '.join(COORDSYS)}.")
    return raw


def out_coordsys(args, default: str) -> str:
    """Coordinate system of the answer: ``out_coordsys`` if given, else the input's."""
    raw = (args.get("out_coordsys") or default).strip().lower()
    if raw not in COORDSYS:
        raise _bad("out_coordsys", f"'out_coordsys' must be one of {', '.join(COORDSYS)}.")
    return raw


def point(args, system: str) -> tuple[float, float]:
    """The lat/lng parameters, converted from ``system`` to WGS-84."""
    lat = number(args, "lat", -90.0, 90.0)
    lng = number(args, "lng", -180.0, 180.0)
    return to_wgs84(lat, lng, system)


def _choices(args, name: str, allowed) -> tuple[str, ...]:
    raw = _raw(args, name, False)
    if raw is None:
        return ()
    values = tuple(dict.fromkeys(v.strip() for v in raw.split(",") if v.strip()))
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise _bad(name, f"Unknown {name} {', '.join(map(repr, unknown))}; known: {', '.join(allowed)}.")
    return values


def kinds(args) -> tuple[str, ...]:
    return _choices(args, "kind", KINDS)


def amenities(args) -> tuple[str, ...]:
    return _choices(args, "amenity", AMENITIES)


def instant(args, name: str, tz: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in ``tz``. Defaults to now."""
    raw = _raw(args, name, False)
    if raw is None:
        return datetime.now(ZoneInfo(tz))
    try:
        value = datetime.fromisoformat(raw.replace(" ", "+") if raw.count(" ") == 1 and "T" in raw else raw)
    except ValueError:
        raise _bad(name, f"'{name}' must be an ISO 8601 time such as 2026-05-01T08:30:00+08:00.") from None
    if not 1900 <= value.year <= 2200:
        raise _bad(name, f"'{name}' must be between the years 1900 and 2200.", "out_of_range")
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def bbox(args) -> tuple[float, float, float, float]:
    """minLng,minLat,maxLng,maxLat."""
    raw = _raw(args, "bbox", True)
    parts = raw.split(",")
    if len(parts) != 4:
        raise _bad("bbox", "'bbox' must be minLng,minLat,maxLng,maxLat.")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise _bad("bbox", "'bbox' must be four numbers: minLng,minLat,maxLng,maxLat.") from None
    if not all(math.isfinite(v) for v in values):
        raise _bad("bbox", "'bbox' must hold finite numbers.")
    min_lng, min_lat, max_lng, max_lat = values
    if not (-180 <= min_lng <= 180 and -180 <= max_lng <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise _bad("bbox", "'bbox' longitudes must be within ±180 and latitudes within ±90.", "out_of_range")
    if min_lng > max_lng or min_lat > max_lat:
        raise _bad("bbox", "'bbox' is inverted: it must be minLng,minLat,maxLng,maxLat.")
    return min_lng, min_lat, max_lng, max_lat


def mode(args) -> str:
    from app.network.modes import MODE_NAMES as MODES

    raw = (args.get("mode") or "walk").strip().lower()
    if raw not in MODES:
        raise _bad("mode", f"'mode' must be one of {', '.join(MODES)}.")
    return raw


def minutes(args, default: int = 15) -> int:
    return integer(args, "minutes", 1, 30, default)


def station_filter(args, with_hours: bool = True):
    from app.stations.model import StationFilter

    return StationFilter(
        kinds=kinds(args),
        amenities=amenities(args),
        open_only=flag(args, "open_now") if with_hours else False,
        include_unknown=flag(args, "include_unknown") if with_hours else False,
    )
