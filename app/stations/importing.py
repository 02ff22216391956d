"""Read station files (CSV, GeoJSON), validate every row, and hand valid rows to a store.

Validation happens before anything is written, so an import is all or nothing:
one bad row and the store is not touched (unless the caller skips invalid rows).
Coordinates are converted to WGS-84 here, at the edge.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapely.geometry import shape

from app.geo.coordsys import COORDSYS, to_wgs84
from app.stations import hours, osm
from app.stations.model import DEFAULT_TIMEZONE, StationInput
from app.stations.vocabulary import ACCESS, AMENITIES, KIND_CORE_AMENITY, KINDS, STATUSES, amenity_mask

FORMATS = ("csv", "geojson")
CSV_COLUMNS = ("source_id", "name", "kind", "lat", "lng", "amenities", "opening_hours", "address", "operator", "access")
_REQUIRED_CSV = ("source_id", "name", "kind", "lat", "lng")
_MAX_TEXT = 500


class ImportFileError(ValueError):
    """The file as a whole cannot be read (wrong format, missing columns, bad JSON)."""


class RowError(ValueError):
    def __init__(self, field_name: str | None, reason: str):
        super().__init__(reason)
        self.field, self.reason = field_name, reason


@dataclass(frozen=True)
class BadRow:
    where: str  # "line 7" or "feature 3"
    field: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field + ': ' if self.field else ''}{self.reason}"


@dataclass
class ParsedFile:
    stations: list[StationInput] = field(default_factory=list)
    errors: list[BadRow] = field(default_factory=list)
    not_stations: int = 0  # OSM features that map to no station kind
    rows: int = 0


def detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return "csv"
    if ext in (".geojson", ".json"):
        return "geojson"
    raise ImportFileError(f"cannot tell the format of {path!r}; pass --format csv|geojson")


# -- readers: yield (where, record dict) ---------------------------------------


def _read_csv(path: str) -> Iterator[tuple[str, dict]]:
    # utf-8-sig drops a BOM; newline="" lets csv handle CRLF and quoted newlines.
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in _REQUIRED_CSV if c not in header]
        if missing:
            raise ImportFileError(
                f"CSV header lacks {', '.join(missing)}; expected columns: {','.join(CSV_COLUMNS)}"
            )
        reader.fieldnames = header
        for record in reader:
            if None in record:
                yield f"line {reader.line_num}", {"__error__": "more fields than the header has"}
                continue
            yield f"line {reader.line_num}", record


def _read_geojson(path: str) -> Iterator[tuple[str, dict]]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ImportFileError("GeoJSON must be a FeatureCollection")
    for i, feature in enumerate(doc["features"], start=1):
        where = f"feature {i}"
        if not isinstance(feature, dict) or not isinstance(feature.get("properties") or {}, dict):
            yield where, {"__error__": "not a GeoJSON Feature"}
            continue
        props = dict(feature.get("properties") or {})
        try:
            point = shape(feature.get("geometry")).representative_point()
            props["lng"], props["lat"] = point.x, point.y
        except Exception:  # shapely raises several types for malformed geometry
            props["lng"] = props["lat"] = None
        tags = props.pop("tags", None) if isinstance(props.get("tags"), dict) else None
        tags = tags or props
        if "amenity" in tags and "kind" not in props:
            mapped = osm.station_fields(tags)
            if mapped is None:
                yield where, {"__skip__": True}
                continue
            osm_id = tags.get("@id") or props.get("@id") or feature.get("id") or props.get("id")
            props = {**mapped, "lat": props["lat"], "lng": props["lng"], "source_id": osm_id}
        elif props.get("source_id") is None and feature.get("id") is not None:
            props["source_id"] = feature["id"]
        yield where, props


# -- one record ---------------------------------------------------------------


def _text(record: dict, name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        value = str(value)
    value = value.strip()
    if not value:
        if required:
            raise RowError(name, "is required")
        return None
    if len(value) > _MAX_TEXT:
        raise RowError(name, f"is longer than {_MAX_TEXT} characters")
    return value


def _coordinate(record: dict, name: str, limit: float) -> float:
    raw = record.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RowError(name, "is required")
    if isinstance(raw, bool):
        raise RowError(name, f"is not a number: {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RowError(name, f"is not a number: {str(raw)[:40]!r}") from None
    if not math.isfinite(value):
        raise RowError(name, "must be a finite number")
    if not -limit <= value <= limit:
        raise RowError(name, f"must be between {-limit:g} and {limit:g} (got {value:g})")
    return value


def _amenities(record: dict, kind: str) -> tuple[int, int]:
    raw = record.get("amenities")
    items = raw if isinstance(raw, list) else (raw or "").split(";")
    yes, no = set(), set()
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        name, _, state = item.partition("=")
        name, state = name.strip(), (state.strip().lower() or "yes")
        if name not in AMENITIES:
            raise RowError("amenities", f"unknown amenity {name!r}")
        if state == "yes":
            yes.add(name)
        elif state == "no":
            no.add(name)
        elif state != "unknown":
            raise RowError("amenities", f"{name}={state}: state must be yes, no or unknown")
    core = KIND_CORE_AMENITY.get(kind)
    if core:
        if core in no:
            raise RowError("amenities", f"{core}=no contradicts kind {kind}")
        yes.add(core)
    both = yes & no
    if both:
        raise RowError("amenities", f"{', '.join(sorted(both))} both yes and no")
    return amenity_mask(yes), amenity_mask(no)


def parse_record(record: dict, *, source: str, coordsys: str, timezone: str) -> StationInput:
    """Validate one record (already read from a file) into a WGS-84 StationInput."""
    source_id = _text(record, "source_id", required=True)
    name = _text(record, "name", required=True)
    kind = _text(record, "kind", required=True)
    if kind not in KINDS:
        raise RowError("kind", f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    lat = _coordinate(record, "lat", 90.0)
    lng = _coordinate(record, "lng", 180.0)
    yes, no = _amenities(record, kind)
    opening_hours = _text(record, "opening_hours")
    if opening_hours:
        try:
            hours.validate(opening_hours)
        except hours.InvalidHours as exc:
            raise RowError("opening_hours", f"cannot parse {opening_hours!r}: {exc}") from None
    access = _text(record, "access") or "public"
    if access not in ACCESS:
        raise RowError("access", f"unknown access {access!r}; known: {', '.join(ACCESS)}")
    fee = _text(record, "fee")
    if fee not in (None, "yes", "no"):
        raise RowError("fee", "must be yes or no")
    batteries = _text(record, "batteries_available")
    if batteries is not None:
        if not batteries.isdigit() or int(batteries) > 10_000:
            raise RowError("batteries_available", f"must be a whole number of batteries, got {batteries!r}")
        batteries = int(batteries)
    status = _text(record, "status") or "active"
    if status not in STATUSES:
        raise RowError("status", f"unknown status {status!r}; known: {', '.join(STATUSES)}")
    try:
        wlat, wlng = to_wgs84(lat, lng, coordsys)
    except (ValueError, OverflowError) as exc:
        raise RowError("lat", f"cannot convert from {coordsys}: {exc}") from None
    return StationInput(
        source=source, source_id=source_id, name=name, kind=kind, lat=wlat, lng=wlng,
        amenities_yes=yes, amenities_no=no, opening_hours=opening_hours,
        address=_text(record, "address"), operator=_text(record, "operator"),
        access=access, fee=fee, batteries_available=batteries, status=status, timezone=timezone,
    )


def parse_file(
    path: str,
    *,
    fmt: str | None = None,
    source: str | None = None,
    coordsys: str = "wgs84",
    timezone: str = DEFAULT_TIMEZONE,
    progress: Callable[[int], None] | None = None,
) -> ParsedFile:
    """Read and validate a whole file. Nothing is written."""
    if coordsys not in COORDSYS:
        raise ImportFileError(f"unknown coordinate system {coordsys!r}; use one of {', '.join(COORDSYS)}")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFileError(f"unknown time zone {timezone!r}") from None
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ImportFileError(f"unknown format {fmt!r}; use csv or geojson")
    if not os.path.isfile(path):
        raise ImportFileError(f"no such file: {path}")
    source = source or os.path.splitext(os.path.basename(path))[0]
    reader = _read_csv if fmt == "csv" else _read_geojson
    result = ParsedFile()
    first_seen: dict[str, str] = {}
    try:
        for where, record in reader(path):
            result.rows += 1
            if progress and result.rows % 100_000 == 0:
                progress(result.rows)
            if record.get("__skip__"):
                result.not_stations += 1
                continue
            if "__error__" in record:
                result.errors.append(BadRow(where, None, record["__error__"]))
                continue
            try:
                station = parse_record(record, source=source, coordsys=coordsys, timezone=timezone)
            except RowError as exc:
                result.errors.append(BadRow(where, exc.field, exc.reason))
                continue
            if station.source_id in first_seen:
                result.errors.append(BadRow(
                    where, "source_id", f"duplicate {station.source_id!r} (first at {first_seen[station.source_id]})"
                ))
                continue
            first_seen[station.source_id] = where
            result.stations.append(station)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ImportFileError(f"malformed CSV: {exc}") from None
    return result
