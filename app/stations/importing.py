"""Read station files (CSV, GeoJSON), validate every row, and hand valid rows to a store.

Validation happens before anything is written, so an import is all or nothing:
one bad row and the store is not touched (unless the caller skips invalid rows).
Coordinates are converted to WGS-84 here, at the edge.

The readers turn each row or feature into a Record (raw values, not yet checked),
a BadRow (unreadable as a row) or a NotAStation (an OSM feature we do not map);
parse_record turns a Record's fields into a StationInput or raises RowError.
"""
from __future__ import annotations

import codecs
import csv
import json
import math
import os
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shapely.geometry import shape

from app.geo.coordsys import COORDSYS, to_wgs84
from app.numbers import is_plain_number
from app.stations import hours, osm
from app.stations.model import DEFAULT_TIMEZONE, StationInput
from app.stations.vocabulary import ACCESS, AMENITIES, KIND_CORE_AMENITY, KINDS, STATUSES, amenity_mask

FORMATS = ("csv", "geojson")
# What a file may be written in. UTF-8 may start with a BOM; GBK/GB18030 is what Excel on
# Chinese Windows saves ("CSV (逗号分隔)").
ENCODINGS = ("utf-8", "gbk", "gb18030")
CSV_COLUMNS = ("source_id", "name", "kind", "lat", "lng", "amenities", "opening_hours", "address", "operator", "access")
_OPTIONAL_CSV = ("fee", "status", "batteries_available")
_REQUIRED_CSV = ("source_id", "name", "kind", "lat", "lng")
# Excel writes ";" (or, as "Unicode Text", tabs) where the locale's decimal mark is a comma.
_CSV_DELIMITERS = (",", ";", "\t")
_MAX_TEXT = 500
_MAX_BATTERIES = 10_000

# A decimal number in ASCII digits. float() alone would also take "２７.８", "2_7.8" and "nan".
_DECIMAL_COMMA = re.compile(r"[+-]?[0-9]+,[0-9]+")
# How Excel shows (and then saves) a long number in a General cell: 123456789012 -> 1.23457E+11.
_EXCEL_SCIENTIFIC = re.compile(r"[0-9](?:\.[0-9]+)?E\+[0-9]+")
# Control characters (C0, DEL, C1), lone surrogates (only JSON "\ud800" escapes make them; no
# database can store them) and byte-order marks (left mid-text when files are joined).
_FORBIDDEN_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
_CHARACTER_NAMES = {"\x00": "a NUL byte (\\x00)", "\t": "a tab", "\ufeff": "a byte-order mark (U+FEFF)"}


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


@dataclass(frozen=True)
class Record:
    """One row or feature as read: field name -> raw value (text, number, list …), not yet checked."""

    where: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class NotAStation:
    """An OpenStreetMap-tagged feature that maps to no station kind: counted, then ignored."""

    where: str


@dataclass
class ParsedFile:
    stations: list[StationInput] = field(default_factory=list)
    errors: list[BadRow] = field(default_factory=list)
    not_stations: int = 0  # OSM features that map to no station kind
    rows: int = 0
    notes: list[str] = field(default_factory=list)  # about the file as a whole, e.g. ignored columns


def detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return "csv"
    if ext in (".geojson", ".json"):
        return "geojson"
    raise ImportFileError(f"cannot tell the format of {path!r}; pass --format csv|geojson")


def _describe(value: object) -> str:
    """A JSON value for an error message: 'a number (1.0)', 'a boolean (true)', …"""
    kind = ("a boolean" if isinstance(value, bool) else "a number" if isinstance(value, (int, float))
            else "a list" if isinstance(value, list) else "an object" if isinstance(value, dict)
            else "text" if isinstance(value, str) else "a value")
    shown = json.dumps(value, ensure_ascii=False, default=repr)
    shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates stay printable
    return f"{kind} ({shown[:40]}{'…' if len(shown) > 40 else ''})"


# -- readers: yield a Record, BadRow or NotAStation per row ------------------------


def _open_text(path: str, encoding: str):
    # utf-8-sig drops a BOM; newline="" lets csv handle CRLF and quoted newlines.
    return open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="")


def _delimiter(header_line: str) -> str:
    """The delimiter under which the header names every required column (else ",")."""
    for delimiter in _CSV_DELIMITERS:
        names = {n.strip() for n in next(csv.reader([header_line], delimiter=delimiter), [])}
        if names.issuperset(_REQUIRED_CSV):
            return delimiter
    return ","


def _read_csv(path: str, encoding: str, note: Callable[[str], None]) -> Iterator[Record | BadRow]:
    with _open_text(path, encoding) as fh:
        blank_lines = 0
        header_line = fh.readline()
        while header_line and not header_line.strip():
            blank_lines += 1
            header_line = fh.readline()
        if not header_line:
            raise ImportFileError("the file is empty" + (" (only blank lines)" if blank_lines else ""))
        reader = csv.reader(chain([header_line], fh), delimiter=_delimiter(header_line))
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        missing = [c for c in _REQUIRED_CSV if c not in header]
        if missing:
            raise ImportFileError(
                f"CSV header lacks {', '.join(missing)}; expected columns: {','.join(CSV_COLUMNS)}"
            )
        named = [h for h in header if h]
        twice = sorted({h for h in named if named.count(h) > 1})
        if twice:
            raise ImportFileError(f"CSV header names {', '.join(twice)} more than once")
        unknown = [h for h in named if h not in CSV_COLUMNS + _OPTIONAL_CSV]
        if unknown:
            note(f"ignored columns {', '.join(unknown)} (known: {','.join(CSV_COLUMNS + _OPTIONAL_CSV)})")
        unnamed_columns = [i for i, name in enumerate(header) if not name]
        rows = 0
        last_line = reader.line_num
        while True:
            first_line = last_line + 1  # a quoted field may carry a record over several lines
            where = f"line {first_line + blank_lines}"
            try:
                row = next(reader, None)
            except csv.Error as exc:
                hint = " (is a quote left open?)" if "field limit" in str(exc) else ""
                raise ImportFileError(f"malformed CSV at {where}: {exc}{hint}") from None
            if row is None:
                break
            last_line = reader.line_num
            if not "".join(row).strip():
                continue  # a blank line, or a row of empty cells as Excel leaves below the data
            rows += 1
            if len(row) > len(header):
                yield BadRow(where, None, "more fields than the header has")
                continue
            filled = [i for i in unnamed_columns if i < len(row) and row[i].strip()]
            if filled:
                yield BadRow(where, None, f"a value in column {filled[0] + 1}, which has no name in the header")
                continue
            yield Record(where, {name: value for name, value in zip(header, row) if name})
        if not rows:
            raise ImportFileError("the file has a header but no rows")


def _is_finite(number: int | float) -> bool:
    """math.isfinite, also for integers beyond float range (JSON allows them; isfinite raises)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _check_coordinates(geometry: dict) -> None:
    """Every position holds JSON numbers, all finite (json reads NaN, Infinity, and 1e400 as inf)."""
    pending = [geometry]
    while pending:  # a loop, not recursion: the file decides how deep this goes
        item = pending.pop()
        if isinstance(item, dict):
            if item.get("type") == "GeometryCollection":
                pending.extend(item.get("geometries") or [])
            else:
                pending.append(item.get("coordinates"))
        elif isinstance(item, list) and item and not isinstance(item[0], list):
            for axis, number in enumerate(item):
                name = ("lng", "lat")[axis] if axis < 2 else "geometry"
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    raise RowError(name, f"coordinates must be JSON numbers, not {_describe(number)}")
                if not _is_finite(number):
                    shown = repr(number) if isinstance(number, float) else "an integer beyond float range"
                    raise RowError(name, f"{shown} is not a finite number (NaN, Infinity, or too large like 1e400)")
        elif isinstance(item, list):
            pending.extend(item)


def _feature_point(geometry: object) -> tuple[float, float]:
    """(lat, lng) of a point on (or inside) the geometry."""
    if geometry is None:
        raise RowError("geometry", "is missing; every feature needs a point or a shape")
    if not isinstance(geometry, dict):
        raise RowError("geometry", f"must be a GeoJSON geometry object, not {_describe(geometry)}")
    _check_coordinates(geometry)
    try:
        point = shape(geometry).representative_point()
    except Exception as exc:  # shapely raises several types for malformed geometry
        raise RowError("geometry", f"is not a valid GeoJSON geometry: {str(exc).strip()}") from None
    if point.is_empty:
        raise RowError("geometry", "has no coordinates")
    return point.y, point.x


def _read_geojson(
    path: str, encoding: str, note: Callable[[str], None]
) -> Iterator[Record | BadRow | NotAStation]:
    try:
        with _open_text(path, encoding) as fh:
            doc = json.load(fh)
    except UnicodeDecodeError:
        raise  # a ValueError too, but parse_file says what the encoding is
    except json.JSONDecodeError as exc:
        if not exc.doc.strip():
            raise ImportFileError("the file is empty") from None
        raise ImportFileError(f"not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ImportFileError(f"not usable JSON: {exc}") from None
    except RecursionError:
        raise ImportFileError(
            "not usable JSON: nested too deeply (arrays or objects within each other ~1,000 levels deep)"
        ) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ImportFileError("GeoJSON must be a FeatureCollection")
    if not doc["features"]:
        raise ImportFileError("the FeatureCollection has no features")
    for i, feature in enumerate(doc["features"], start=1):
        where = f"feature {i}"
        if not isinstance(feature, dict) or not isinstance(feature.get("properties") or {}, dict):
            yield BadRow(where, None, "not a GeoJSON Feature")
            continue
        props = dict(feature.get("properties") or {})
        tags = props.pop("tags", None) if isinstance(props.get("tags"), dict) else None
        tags = tags or props
        if "amenity" in tags and "kind" not in props:
            try:
                mapped = osm.station_fields(tags)
            except osm.TagNotText as exc:
                yield BadRow(where, exc.key, f"OSM tag values are text, not {_describe(exc.value)}")
                continue
            if mapped is None:
                yield NotAStation(where)
                continue
            osm_id = tags.get("@id") or props.get("@id") or feature.get("id") or props.get("id")
            props = {**mapped, "source_id": osm_id}
        elif props.get("source_id") is None and feature.get("id") is not None:
            props["source_id"] = feature["id"]
        try:
            props["lat"], props["lng"] = _feature_point(feature.get("geometry"))
        except RowError as exc:
            yield BadRow(where, exc.field, exc.reason)
            continue
        yield Record(where, props)


# -- one record ---------------------------------------------------------------


def _refuse_characters(name: str, found: re.Match) -> RowError:
    char, at = found.group(), f"at character {found.start() + 1}"
    if char in "\r\n":
        reason = f"contains a line break {at} (is a quote left open?)"
    elif "\ud800" <= char <= "\udfff":
        reason = f"contains an unpaired surrogate (\\u{ord(char):04x}) {at}; it is not Unicode text"
    else:
        reason = f"contains {_CHARACTER_NAMES.get(char) or f'the control character U+{ord(char):04X}'} {at}"
    return RowError(name, reason)


def _text(record: Mapping[str, object], name: str, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise RowError(name, f"must be text, not {_describe(value)}")
    value = value.strip()
    if not value:
        if required:
            raise RowError(name, "is required")
        return None
    if len(value) > _MAX_TEXT:
        raise RowError(name, f"is longer than {_MAX_TEXT} characters")
    found = _FORBIDDEN_CHARACTER.search(value)
    if found:
        raise _refuse_characters(name, found)
    return value


def _source_id(record: Mapping[str, object]) -> str:
    """Text, or a whole JSON number taken as its digits (GeoJSON ids are often numbers: 12 -> "12")."""
    value = record.get("source_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise RowError("source_id", f"must be text or a whole number, not {_describe(value)}")
    source_id = _text(record, "source_id", required=True)
    if _EXCEL_SCIENTIFIC.fullmatch(source_id):
        raise RowError("source_id", f"{source_id!r} looks like a long number Excel rounded into scientific "
                                    "notation; format the column as Text and export again")
    return source_id


def _number_hint(text: str) -> str:
    """Why text that looks numeric to a person is not a number here."""
    if not text.isascii():
        return "; write numbers in ASCII digits 0-9 (not full-width ０-９ or other scripts)"
    if _DECIMAL_COMMA.fullmatch(text):
        return "; use a dot as the decimal mark"
    return ""


def _coordinate(record: Mapping[str, object], name: str, limit: float) -> float:
    raw = record.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise RowError(name, "is required")
    if isinstance(raw, str):
        text = raw.strip()
        if not is_plain_number(text):
            raise RowError(name, f"is not a number: {text[:40]!r}{_number_hint(text)}")
        value = float(text)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw) if _is_finite(raw) else math.inf
    else:
        raise RowError(name, f"is not a number: {_describe(raw)}")
    if not math.isfinite(value):
        raise RowError(name, "must be a finite number")
    if not -limit <= value <= limit:
        raise RowError(name, f"must be between {-limit:g} and {limit:g} (got {value:g})")
    return value


def _batteries(record: Mapping[str, object]) -> int | None:
    """A whole number 0…10,000: ASCII digits, or a JSON number with nothing after the point (7 or 7.0)."""
    raw = record.get("batteries_available")
    expected = "must be a whole number of batteries"
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None
        if not text.isascii() or not text.isdigit():
            raise RowError("batteries_available", f"{expected}, got {text[:40]!r}{_number_hint(text)}")
        count = int(text)
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        if not (_is_finite(raw) and float(raw).is_integer()) or raw < 0:
            raise RowError("batteries_available", f"{expected}, got {_describe(raw)}")
        count = int(raw)
    elif raw is None:
        return None
    else:
        raise RowError("batteries_available", f"{expected}, got {_describe(raw)}")
    if count > _MAX_BATTERIES:
        raise RowError("batteries_available", f"{expected} (at most {_MAX_BATTERIES:,}), got {count}")
    return count


def _fee(record: Mapping[str, object]) -> str | None:
    if isinstance(record.get("fee"), bool):  # JSON true/false
        return "yes" if record["fee"] else "no"
    fee = _text(record, "fee")
    if fee not in (None, "yes", "no"):
        raise RowError("fee", "must be yes or no")
    return fee


def _amenity_states(raw: object) -> list[tuple[str, str]]:
    """(name, state) pairs from any accepted form: "a;b=no" text, ["a", "b=no"], or {"a": "yes", "b": false}."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        pairs = []
        for name, state in raw.items():
            if isinstance(state, bool):
                state = "yes" if state else "no"
            elif state is None:
                state = "unknown"
            elif not isinstance(state, str):
                raise RowError("amenities", f"{name}: state must be yes, no or unknown, not {_describe(state)}")
            pairs.append((name.strip(), state.strip().lower()))
        return pairs
    if isinstance(raw, str):
        items = raw.split(";")
    elif isinstance(raw, list):
        items = raw
        for item in items:
            if not isinstance(item, str):
                raise RowError("amenities", f"list items must be text, not {_describe(item)}")
    else:
        raise RowError("amenities", f"must be text, a list or an object, not {_describe(raw)}")
    pairs = []
    for item in items:
        name, _, state = item.strip().partition("=")
        if name.strip():
            pairs.append((name.strip(), state.strip().lower() or "yes"))
    return pairs


def _amenities(record: Mapping[str, object], kind: str) -> tuple[int, int]:
    yes, no = set(), set()
    for name, state in _amenity_states(record.get("amenities")):
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


def parse_record(record: Mapping[str, object], *, source: str, coordsys: str, timezone: str) -> StationInput:
    """Validate one record's fields (as read from a file, or from osm.station_fields) into a WGS-84 StationInput.

    Text fields must be JSON/CSV text; only source_id also takes a whole number, fee a boolean,
    batteries_available a whole number, and amenities a list or an object.
    """
    source_id = _source_id(record)
    name = _text(record, "name", required=True)
    kind = _text(record, "kind", required=True)
    if kind not in KINDS:
        raise RowError("kind", f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    lat = _coordinate(record, "lat", 90.0)
    lng = _coordinate(record, "lng", 180.0)
    if lat == 0 and lng == 0:
        raise RowError("lat", "lat and lng are both 0, the usual stand-in for a missing location")
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
    fee = _fee(record)
    batteries = _batteries(record)
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


# -- the file's text encoding -------------------------------------------------------


def _is_mostly_chinese(text: str) -> bool:
    """Most non-ASCII characters are CJK ideographs or CJK/full-width punctuation."""
    wide = [c for c in text if not c.isascii()]
    cjk = sum("\u3000" <= c <= "\u303f" or "\u4e00" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef" for c in wide)
    return bool(wide) and cjk * 2 >= len(wide)


def _undecodable(path: str, encoding: str) -> ImportFileError:
    """Where the file stops being ``encoding`` text, and what it probably is instead."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(b"PK\x03\x04"):
        return ImportFileError("the file is a zip archive, such as an Excel workbook (.xlsx); "
                               "save it from Excel as \"CSV UTF-8\"")
    root, ext = os.path.splitext(path)
    convert = f"{shlex.quote(path)} > {shlex.quote(root + '-utf8' + ext)}"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ImportFileError(
            "the file is UTF-16 text (Excel's \"Unicode Text\"); save it as \"CSV UTF-8\", "
            f"or convert it: iconv -f UTF-16 -t UTF-8 {convert}"
        )
    offset = 0
    where = ""
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        try:
            line.decode(encoding)
        except UnicodeDecodeError as exc:
            where = f" at line {number} (byte {offset + exc.start}: {exc.reason})"
            break
        offset += len(line)
    if encoding != "utf-8":
        return ImportFileError(f"the file is not {encoding.upper()} text{where}")
    try:
        as_gb = data.decode("gb18030")
    except UnicodeDecodeError:
        as_gb = ""
    if _is_mostly_chinese(as_gb):
        return ImportFileError(
            f"the file is not UTF-8 text{where}; it looks like GBK/GB18030, which Excel on Chinese Windows "
            f"saves. Pass --encoding gb18030, or convert it: iconv -f GB18030 -t UTF-8 {convert}"
        )
    return ImportFileError(f"the file is not UTF-8 text{where}; save it as UTF-8 (Excel: \"CSV UTF-8\")")


def _is_non_ascii_utf8(path: str) -> bool:
    """True if the file holds non-ASCII text and all of it is valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    non_ascii = False
    with open(path, "rb") as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                non_ascii = non_ascii or not chunk.isascii()
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return non_ascii


# -- a whole file ---------------------------------------------------------------


def parse_file(
    path: str,
    *,
    fmt: str | None = None,
    source: str | None = None,
    coordsys: str = "wgs84",
    timezone: str = DEFAULT_TIMEZONE,
    encoding: str = "utf-8",
    progress: Callable[[int], None] | None = None,
) -> ParsedFile:
    """Read and validate a whole file. Nothing is written."""
    if coordsys not in COORDSYS:
        raise ImportFileError(f"unknown coordinate system {coordsys!r}; use one of {', '.join(COORDSYS)}")
    if encoding not in ENCODINGS:
        raise ImportFileError(f"unknown encoding {encoding!r}; use one of {', '.join(ENCODINGS)}")
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
        if encoding != "utf-8" and _is_non_ascii_utf8(path):
            # GBK would decode most UTF-8 Chinese without error, into the wrong characters.
            raise ImportFileError(f"the file is UTF-8 text, which --encoding {encoding} would garble; "
                                  "leave out --encoding")
        for item in reader(path, encoding, result.notes.append):
            result.rows += 1
            if progress and result.rows % 100_000 == 0:
                progress(result.rows)
            if isinstance(item, NotAStation):
                result.not_stations += 1
                continue
            if isinstance(item, BadRow):
                result.errors.append(item)
                continue
            try:
                station = parse_record(item.fields, source=source, coordsys=coordsys, timezone=timezone)
            except RowError as exc:
                result.errors.append(BadRow(item.where, exc.field, exc.reason))
                continue
            if station.source_id in first_seen:
                first = first_seen[station.source_id]
                reason = f"duplicate {station.source_id!r} (first at {first})"
                result.errors.append(BadRow(item.where, "source_id", reason))
                continue
            first_seen[station.source_id] = item.where
            result.stations.append(station)
    except UnicodeDecodeError:
        raise _undecodable(path, encoding) from None
    except OSError as exc:  # no read permission, a disk error, a file removed while read
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return result
