"""Open311 GeoReport v2 on the wire: what a client sends, read into the service's terms, and the
service's answers written under the standard's field names. No Flask and no routes here
(app.open311 has them); bad input raises ``app.ops.errors.Invalid`` like the service does.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Callable, Mapping, Sequence
from zoneinfo import ZoneInfo

from app.api.args import FIRST_YEAR, LAST_YEAR
from app.api.serialize import point
from app.geo.coordsys import COORDSYS, WGS84, to_wgs84
from app.numbers import is_plain_integer, is_plain_number
from app.ops.categories import Category
from app.ops.errors import Invalid
from app.ops.photos import MAX_PHOTOS
from app.ops.service import PublicView, ReportInput, Submitted
from app.ops.workflow import STATE_TYPES
from app.reporting.texts import REASON_WORDS, STATE_WORDS, TEXTS

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-27T00:00:00+08:00"  # when this server's Open311 interface last changed
FORMATS = ("application/json",)
STATION_ATTRIBUTE = "station_id"
PHOTO_FIELD = "media"  # an uploaded photo (multipart), besides the standard's media_url
DEFAULT_DAYS = 90  # GET requests without dates: the last 90 days, as the standard asks
MAX_ROWS = 1000  # GET requests answers at most this many, newest first
MAX_CODES = 50  # service codes in one GET requests filter
# Open311 knows two statuses; a work order's state type says which (fixed and closed are closed).
STATUS_OF_STATE = {state: "open" if kind == "open" else "closed" for state, kind in STATE_TYPES.items()}
STATUSES = ("open", "closed")
# Whose words a work order's description is: the public's are published, as the standard does;
# an inspection's (with the inspector's note) stay with the staff.
TIME_FORMAT = "%Y-%m-%d %H:%M"  # wall clock in notices, as the tracking page writes it
GROUP = {"zh-CN": "驿站设施", "en": "Station facilities"}
_SPACE = {"zh-CN": "", "en": " "}  # between sentences
_FULL_STOP = {"zh-CN": "。", "en": "."}
_STATION_HELP = {
    "zh-CN": "站点编号（/api/v1/stations 中的 id）。填写后无需 lat/long；不填则按位置归到 50 米内最近的站点。",
    "en": "The station's id (as in /api/v1/stations). With it, lat/long are not needed; without it the "
          "report goes to the nearest station within 50 m of lat/long.",
}


# -- answers ----------------------------------------------------------------------------


def discovery(url: str, lang: str) -> dict:
    contact = {"zh-CN": "由本站运营单位维护；如需帮助或 api_key，请联系运营单位。",
               "en": "Run by this site's operators: ask them for help and for an api_key."}[lang]
    key_service = {"zh-CN": "运营单位为每个客户端应用签发一个 api_key（flask --app wsgi open311 keys create 名称）。",
                   "en": "The operators issue one api_key per client application "
                         "(flask --app wsgi open311 keys create NAME)."}[lang]
    return {
        "changeset": CHANGESET, "contact": contact, "key_service": key_service,
        "endpoints": [{
            "specification": SPECIFICATION, "url": url, "changeset": CHANGESET, "type": "production",
            "formats": list(FORMATS),
            # The standard makes XML required; this server answers JSON only, and says so.
            "notes": "JSON only: append .json to each resource; .xml answers 400 (format not supported).",
        }],
    }


def service(category: Category, lang: str) -> dict:
    return {
        "service_code": category.code, "service_name": category.names[lang],
        "description": category.descriptions[lang], "metadata": True, "type": "realtime",
        # Both languages and the code, so a client can search in either.
        "keywords": ", ".join(dict.fromkeys((category.names["zh-CN"], category.names["en"], category.code))),
        "group": GROUP[lang],
    }


def definition(category: Category, lang: str) -> dict:
    return {
        "service_code": category.code,
        "attributes": [{
            "variable": True, "code": STATION_ATTRIBUTE, "datatype": "number", "required": False,
            "datatype_description": {"zh-CN": "整数", "en": "a whole number"}[lang], "order": 1,
            "description": _STATION_HELP[lang],
        }],
    }


def submitted(done: Submitted, lang: str, track_url: str) -> list[dict]:
    """The POST answer: the id, the tracking token, and a notice that says when and where to look."""
    texts, space = TEXTS[lang], _SPACE[lang]
    due = texts["due"].format(time=done.due_at.strftime(TIME_FORMAT)) + _FULL_STOP[lang]
    notice = space.join((texts["joined" if done.joined else "received"], due, texts["keep_link"])) + f" {track_url}"
    return [{"service_request_id": str(done.work_order_id), "token": done.token,
             "service_notice": notice, "account_id": None}]


def service_request(view: PublicView, lang: str, coordsys: str, photo_url: Callable[[str], str]) -> dict:
    """One service request, from what the public may see (``view``). Never a reporter's phone,
    e-mail, device or tracking token."""
    where = point(view.lat, view.lng, coordsys)
    return {
        "service_request_id": str(view.id),
        "status": STATUS_OF_STATE[view.state],
        "status_notes": view.status_note or None,
        "service_name": view.category.names[lang],
        "service_code": view.category.code,
        "description": view.description,
        "agency_responsible": view.organisation,
        "service_notice": _notice(view, lang),
        "requested_datetime": _iso(view.created_at),
        "updated_datetime": _iso(view.updated_at),
        "expected_datetime": _iso(view.due_at),
        "address": view.station_name,
        "address_id": str(view.station_id) if view.station_id is not None else None,
        "zipcode": None,
        "lat": where["lat"],
        "long": where["lng"],
        "media_url": photo_url(view.photos[0]) if view.photos else None,
    }


def _notice(view: PublicView, lang: str) -> str:
    texts = TEXTS[lang]
    if STATUS_OF_STATE[view.state] == "open":
        due = texts["due_estimated" if view.due_estimated else "due"].format(time=view.due_at.strftime(TIME_FORMAT))
        return f"{due} · {texts['reports'].format(n=view.reports)}"
    reason = REASON_WORDS.get(view.close_reason or "", {}).get(lang)
    state = STATE_WORDS[view.state][lang]
    return f"{state}: {reason}" if reason else state


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


# -- questions ------------------------------------------------------------------------------


def coordsys(value: str | None) -> str:
    value = value or WGS84
    if value not in COORDSYS:
        raise Invalid(f"coordsys must be one of {', '.join(COORDSYS)} (got {value!r})", "coordsys")
    return value


def _number(value: str, name: str) -> float:
    if not is_plain_number(value.strip()):
        raise Invalid(f"{name} must be a decimal number such as 27.83 (got {value[:40]!r})", name)
    return float(value)


def whole_number(value: str | None, name: str) -> int | None:
    """A whole number (an id); None when absent or empty."""
    value = (value or "").strip()
    if not value:
        return None
    if not is_plain_integer(value) or not 0 < int(value) < 2 ** 63:
        raise Invalid(f"{name} must be a whole number greater than 0 (got {value[:40]!r})", name)
    return int(value)


def location(form: Mapping[str, str]) -> tuple[float | None, float | None]:
    """``lat`` and ``long`` (both or neither) in ``coordsys``, as WGS-84."""
    lat, lng = (form.get(name, "").strip() for name in ("lat", "long"))
    if not lat and not lng:
        return None, None
    if not lat or not lng:
        raise Invalid("lat and long go together: give both, or attribute[station_id]", "lat" if not lat else "long")
    system = coordsys(form.get("coordsys"))
    y, x = _number(lat, "lat"), _number(lng, "long")
    if not (-90 <= y <= 90 and -180 <= x <= 180):
        raise Invalid("the location is out of range: lat must be within ±90, long within ±180", "lat")
    return to_wgs84(y, x, system)


def report_input(form: Mapping[str, str], photos: Sequence[bytes], key_id: int) -> ReportInput:
    """A POSTed service request as the service's ReportInput (first_name / last_name are not kept)."""
    code = form.get("service_code", "").strip()
    if not code:
        raise Invalid("service_code is required: see services.json", "service_code")
    station_id = whole_number(form.get(f"attribute[{STATION_ATTRIBUTE}]"), STATION_ATTRIBUTE)
    lat, lng = location(form)
    if station_id is None and lat is None:
        raise Invalid(f"say where: lat and long, or attribute[{STATION_ATTRIBUTE}]", "lat")
    media_url = form.get("media_url", "").strip()
    # Staff pages link to it: only web addresses, never javascript: or data: ones.
    if media_url and not media_url.lower().startswith(("https://", "http://")):
        raise Invalid("media_url must be an http(s) address", "media_url")
    if len(photos) > MAX_PHOTOS:
        raise Invalid(f"at most {MAX_PHOTOS} photos ({PHOTO_FIELD}) per request", PHOTO_FIELD)
    return ReportInput(
        category=code, station_id=station_id, lat=lat, lng=lng, description=form.get("description", ""),
        phone=form.get("phone"), email=form.get("email"), device_id=form.get("device_id"),
        media_url=media_url or None, source="open311", open311_key_id=key_id, photos=tuple(photos))


def _instant(value: str, name: str, zone: ZoneInfo, day_end: bool) -> datetime:
    """A W3C date-time (a '+' of the offset may arrive as a space); without an offset, in ``zone``.
    A date alone is that day's start, or (``day_end``) the next day's start."""
    text = value.strip()
    if text.count(" ") == 1 and "T" in text:
        text = text.replace(" ", "+")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            parsed = datetime.combine(day + timedelta(days=1 if day_end else 0), time(0))
        else:
            parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):  # OverflowError: the day after 9999-12-31
        raise Invalid(f"{name} must be a W3C date-time such as 2026-11-01T08:00:00+08:00 "
                      f"(got {value[:40]!r})", name) from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise Invalid(f"{name} must be between the years {FIRST_YEAR} and {LAST_YEAR}", name)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _comma_list(value: str, name: str, most: int) -> list[str]:
    items = list(dict.fromkeys(item.strip() for item in value.split(",")))
    if "" in items or len(items) > most:
        raise Invalid(f"{name} must be a comma list of at most {most} items, without empty ones", name)
    return items


def request_filters(args: Mapping[str, str], now: datetime, zone: ZoneInfo) -> dict:
    """GET requests' filters, as ``Ops.public_list`` takes them.

    As the standard says, ``service_request_id`` overrides every other filter; without dates the
    answer covers the last 90 days (before ``end_date`` when only that is given).
    """
    if args.get("service_request_id"):
        ids = [whole_number(item, "service_request_id")
               for item in _comma_list(args["service_request_id"], "service_request_id", MAX_ROWS)]
        return {"ids": ids, "categories": None, "states": None, "start": None, "end": None}
    start = _instant(args["start_date"], "start_date", zone, False) if args.get("start_date") else None
    end = _instant(args["end_date"], "end_date", zone, True) if args.get("end_date") else None
    if start is not None and end is not None and end < start:
        raise Invalid("end_date is before start_date", "end_date")
    if start is None:
        start = (end or now) - timedelta(days=DEFAULT_DAYS)
    states = None
    if args.get("status"):
        wanted = _comma_list(args["status"], "status", len(STATUSES))
        if set(wanted) - set(STATUSES):
            raise Invalid(f"status must be open, closed or both (comma list); got {args['status'][:40]!r}", "status")
        states = [state for state, status in STATUS_OF_STATE.items() if status in wanted]
    codes = _comma_list(args["service_code"], "service_code", MAX_CODES) if args.get("service_code") else None
    return {"ids": None, "categories": codes, "states": states, "start": start, "end": end}
