"""Sensor-triggered cleaning (issue #9 §4, Shenzhen's IOC loop). No Flask here.

People counters (optionally with NH3 / H2S sensors) are registered to a station and send
readings: over MQTT on ``yizhan/sensors/<device_id>/reading`` (app.ops.sensor_listener) or by
POST to /api/v1/sensors/<device_id>/readings with the device's token. Readings are applied in
batches (``record_many``: one transaction, a savepoint per reading): insert the reading (its
primary key (device, ts) makes a repeat a no-op), add ``people_in`` to the station's counters row;
the devices that spoke are touched once per batch. When the visitors since the last
cleaning reach the station's threshold, or a gas is above the limit for the toilet's grade, a
``cleaning_required`` work order is opened (at most one open per station: the counters row
remembers it, the unique index on open work orders backs that up). Fixing or closing it — the
cleaner's check-in on site, or a move in the queue — resets the count (``reset_count``).

Silent devices are found by ``ops tick`` (``Sensors.check_offline``), which opens one
``sensor_offline`` work order per station; the station's devices all speaking again resolves it.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text

from app.dbtime import from_db, to_db, utcnow
from app.ops.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from app.ops.service import ReportInput, scope_for
from app.ops.workflow import OPEN_STATES
from app.stations.hours import evaluate_station

TOPIC_PREFIX = "yizhan/sensors/"
TOPIC_SUFFIX = "/reading"
SUBSCRIPTION = TOPIC_PREFIX + "+" + TOPIC_SUFFIX
# A device id is one MQTT topic level: no '/', and none of MQTT's wildcards.
DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
DEVICE_TOKEN_PREFIX = "yzd_"
_TOKEN_MAX_LENGTH = 100
_NO_TOKEN = "send the device's token: Authorization: Bearer <token> (from `flask --app wsgi sensors register`)"

CLEANING = "cleaning_required"  # app.ops.categories.SENSOR_CATEGORIES
OFFLINE = "sensor_offline"

# Bounds on a reading. A counter reporting every 10 s never sees 10,000 people; a gas value above
# 1,000 mg/m³ is a broken sensor, not a toilet.
MAX_PAYLOAD_BYTES = 1024
MAX_PEOPLE_IN = 10_000
MAX_GAS_MG_M3 = 1000.0
MAX_CLOCK_AHEAD = timedelta(minutes=5)  # a device's clock may run this far ahead of ours
MAX_READING_AGE = timedelta(days=7)  # older: a device with a reset clock, or a replay
# Flood: readings of one device within one minute of its own clock. Counted on the readings
# themselves (not on arrival), so a backlog the broker delivers at once after an outage is not a flood.
MAX_READINGS_PER_MINUTE = 60

DEFAULT_THRESHOLD = 100  # visitors between cleanings; each station's rule may say otherwise
THRESHOLD_RANGE = (1, 100_000)
DEFAULT_OFFLINE_AFTER = timedelta(minutes=10)
OFFLINE_AFTER_RANGE_S = (60, 7 * 24 * 3600)

# Toilet grades (城市公共厕所 一类/二类/三类) and their gas limits in mg/m³. The values are those of
# the table in GB/T 17217-1998 城市公共厕所卫生标准 (氨 0.3 / 1 / 3; 硫化氢 0.01 for every grade),
# which we could check; GB/T 17217-2021 replaced it and we could not verify whether its table
# changed these values. They are data: correct them here, and a station's grade is editable.
GRADES: dict[str, dict[str, Any]] = {
    "class1": {"names": {"zh-CN": "一类", "en": "Class 1"}, "nh3": 0.3, "h2s": 0.01},
    "class2": {"names": {"zh-CN": "二类", "en": "Class 2"}, "nh3": 1.0, "h2s": 0.01},
    "class3": {"names": {"zh-CN": "三类", "en": "Class 3"}, "nh3": 3.0, "h2s": 0.01},
}
DEFAULT_GRADE = "class2"
GASES = ("nh3", "h2s")
# A station's state on the operations centre's map: the first of these that applies ("unknown":
# opening hours not known — never shown as closed).
IOC_STATES = ("overdue", "cleaning_due", "sensor_offline", "fault", "closed", "unknown", "open")
REJECTIONS = ("bad_topic", "bad_payload", "unknown_device", "bad_time", "flood")


class Rejected(Exception):
    """A reading that is not applied, and why (one of REJECTIONS); the listener logs and counts it,
    the HTTP edge answers it as a 4xx."""

    def __init__(self, reason: str, message: str, field: str | None = None):
        assert reason in REJECTIONS
        super().__init__(message)
        self.reason, self.message, self.field = reason, message, field


@dataclass(frozen=True)
class Reading:
    ts: datetime  # aware
    people_in: int
    nh3: float | None = None
    h2s: float | None = None


@dataclass(frozen=True)
class Recorded:
    applied: bool  # False: this (device, ts) was applied before
    station_id: int
    cleaning_work_order_id: int | None  # the station's open cleaning work order, if any
    opened: bool  # this reading opened it


@dataclass(frozen=True)
class Rule:
    station_id: int
    visitor_threshold: int
    grade: str
    offline_after_s: int
    visitors_since_cleaning: int
    last_cleaned_at: datetime | None

    @property
    def limits(self) -> dict[str, float]:
        return {gas: GRADES[self.grade][gas] for gas in GASES}


def topic_for(device_id: str) -> str:
    return f"{TOPIC_PREFIX}{device_id}{TOPIC_SUFFIX}"


def device_in_topic(topic: str) -> str:
    """The device id of a reading's topic; ``Rejected`` for any other topic."""
    if topic.startswith(TOPIC_PREFIX) and topic.endswith(TOPIC_SUFFIX):
        device_id = topic[len(TOPIC_PREFIX):-len(TOPIC_SUFFIX)]
        if DEVICE_ID.match(device_id):
            return device_id
    raise Rejected("bad_topic", f"not a reading topic: {topic[:120]!r}")


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number")


def parse_reading(payload: bytes) -> Reading:
    """An MQTT payload as a Reading (the HTTP edge validates the same fields with pydantic,
    from the same bounds); ``Rejected`` says what is wrong. Times are checked by ``check_time``."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("bad_payload", f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)  # NaN, Infinity
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected("bad_payload", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected("bad_payload", "the payload must be a JSON object")
    unknown = sorted(set(data) - {"ts", "people_in", *GASES})
    if unknown:
        raise Rejected("bad_payload", f"unknown field(s) {', '.join(unknown)[:100]}", unknown[0])
    ts = data.get("ts")
    try:
        when = datetime.fromisoformat(ts) if isinstance(ts, str) and len(ts) <= 40 else None
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise Rejected("bad_payload", "'ts' must be an ISO 8601 time with an offset", "ts")
    people = data.get("people_in")
    if isinstance(people, bool) or not isinstance(people, int) or not 0 <= people <= MAX_PEOPLE_IN:
        raise Rejected("bad_payload", f"'people_in' must be a whole number from 0 to {MAX_PEOPLE_IN}", "people_in")
    gases = {}
    for gas in GASES:
        value = data.get(gas)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or not 0 <= value <= MAX_GAS_MG_M3):
            raise Rejected("bad_payload", f"'{gas}' must be a number of mg/m³ from 0 to {MAX_GAS_MG_M3:g}", gas)
        gases[gas] = float(value) if value is not None else None
    return Reading(when, people, **gases)


def check_time(ts: datetime, now: datetime) -> None:
    if ts > now + MAX_CLOCK_AHEAD:
        raise Rejected("bad_time", f"'ts' is in the future (more than {MAX_CLOCK_AHEAD} ahead)", "ts")
    if ts < now - MAX_READING_AGE:
        raise Rejected("bad_time", f"'ts' is older than {MAX_READING_AGE.days} days", "ts")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def reset_count(stations, station_id: int, at: datetime) -> None:
    """The station was cleaned at ``at``: visitors are counted from zero, and the cleaning work
    order is no longer the open one."""
    with stations.transaction() as conn:
        conn.execute(text(
            "UPDATE station_cleaning SET visitors_since_cleaning = 0, last_cleaned_at = :at,"
            " cleaning_work_order_id = NULL WHERE station_id = :sid"),
            {"sid": station_id, "at": to_db(at, conn.dialect.name)})


def _minute(ts: datetime) -> tuple[datetime, datetime]:
    start = ts.replace(second=0, microsecond=0)
    return start, start + timedelta(minutes=1)


class Sensors:
    """Devices, readings, rules and the cleaning loop, over the operations service."""

    def __init__(self, ops):
        self._ops = ops
        self._stations = ops.stations

    # -- devices and rules ------------------------------------------------------------

    def register(self, device_id: str, station_id: int, threshold: int | None = None,
                 now: datetime | None = None) -> str:
        """Bind a new device to a station and give its token (shown once; only its hash is kept).
        The station gets the default rule if it has none; ``threshold`` sets its visitor threshold."""
        now = now or utcnow()
        if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
            raise Invalid("a device id is 1-64 letters, digits, '_', '.', ':' or '-' (no '/', '+' or '#'), "
                          "starting with a letter or digit", "device_id")
        station = self._stations.get(station_id)
        if station is None or station.status == "removed":
            raise NotFound(f"No station with id {station_id}.", "station_id")
        token = DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._stations.transaction() as conn:
            t = to_db(now, conn.dialect.name)
            if conn.execute(text("SELECT 1 FROM sensor_device WHERE device_id = :d"), {"d": device_id}).first():
                raise Conflict(f"device {device_id!r} is already registered", "device_id")
            conn.execute(text("INSERT INTO sensor_device (device_id, station_id, token_hash, registered_at)"
                              " VALUES (:d, :sid, :h, :t)"),
                         {"d": device_id, "sid": station_id, "h": token_hash(token), "t": t})
            self._ensure_rule(conn, station_id)
        if threshold is not None:
            self.set_rule(station_id, threshold=threshold)
        return token

    @staticmethod
    def _ensure_rule(conn, station_id: int) -> None:
        exists = conn.execute(text("SELECT 1 FROM station_cleaning WHERE station_id = :sid"),
                              {"sid": station_id}).first()
        if not exists:
            conn.execute(text("INSERT INTO station_cleaning (station_id, visitor_threshold, grade, offline_after_s)"
                              " VALUES (:sid, :th, :grade, :off)"),
                         {"sid": station_id, "th": DEFAULT_THRESHOLD, "grade": DEFAULT_GRADE,
                          "off": int(DEFAULT_OFFLINE_AFTER.total_seconds())})

    def rule(self, station_id: int) -> Rule:
        with self._stations.reading() as conn:
            row = conn.execute(text(
                "SELECT station_id, visitor_threshold, grade, offline_after_s, visitors_since_cleaning,"
                " last_cleaned_at FROM station_cleaning WHERE station_id = :sid"), {"sid": station_id}).first()
        if row is None:
            station = self._stations.get(station_id)
            if station is None:
                raise NotFound(f"No station with id {station_id}.", "station_id")
            return Rule(station_id, DEFAULT_THRESHOLD, DEFAULT_GRADE, int(DEFAULT_OFFLINE_AFTER.total_seconds()),
                        0, None)
        return Rule(**{**row._mapping, "last_cleaned_at": from_db(row.last_cleaned_at)})

    def set_rule(self, station_id: int, *, threshold: int | None = None, grade: str | None = None,
                 offline_after_s: int | None = None) -> Rule:
        """Change a station's rule (what is not given stays)."""
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)
                                      or not THRESHOLD_RANGE[0] <= threshold <= THRESHOLD_RANGE[1]):
            raise Invalid(f"the visitor threshold must be a whole number from {THRESHOLD_RANGE[0]} "
                          f"to {THRESHOLD_RANGE[1]:,}", "visitor_threshold")
        if grade is not None and grade not in GRADES:
            raise Invalid(f"the toilet grade must be one of {', '.join(GRADES)}", "grade")
        if offline_after_s is not None and (isinstance(offline_after_s, bool) or not isinstance(offline_after_s, int)
                                            or not OFFLINE_AFTER_RANGE_S[0] <= offline_after_s
                                            <= OFFLINE_AFTER_RANGE_S[1]):
            raise Invalid(f"offline_after_s must be from {OFFLINE_AFTER_RANGE_S[0]} to {OFFLINE_AFTER_RANGE_S[1]}",
                          "offline_after_s")
        if self._stations.get(station_id) is None:
            raise NotFound(f"No station with id {station_id}.", "station_id")
        changes = {k: v for k, v in (("visitor_threshold", threshold), ("grade", grade),
                                     ("offline_after_s", offline_after_s)) if v is not None}
        with self._stations.transaction() as conn:
            self._ensure_rule(conn, station_id)
            if changes:
                sets = ", ".join(f"{k} = :{k}" for k in changes)
                conn.execute(text(f"UPDATE station_cleaning SET {sets} WHERE station_id = :sid"),
                             {**changes, "sid": station_id})
        return self.rule(station_id)

    def authenticate(self, device_id: str, token: str | None) -> None:
        """``Unauthorized`` without a token, or with one no device has; ``Forbidden`` for another
        device's token."""
        if not token or len(token) > _TOKEN_MAX_LENGTH or not token.startswith(DEVICE_TOKEN_PREFIX):
            raise Unauthorized(_NO_TOKEN)
        with self._stations.reading() as conn:
            owner = conn.execute(text("SELECT device_id FROM sensor_device WHERE token_hash = :h"),
                                 {"h": token_hash(token)}).scalar()
        if owner is None:
            raise Unauthorized(_NO_TOKEN)
        if not secrets.compare_digest(owner, device_id):
            raise Forbidden("this token belongs to another device")

    # -- readings ---------------------------------------------------------------------

    def record(self, device_id: str, reading: Reading, now: datetime | None = None) -> Recorded:
        """Apply one reading, once; ``Rejected`` for an unknown device, a bad time or a flood."""
        (done,) = self.record_many([(device_id, reading)], now)
        if isinstance(done, Rejected):
            raise done
        return done

    def record_many(self, readings: Sequence[tuple[str, Reading]],
                    now: datetime | None = None) -> list[Recorded | Rejected]:
        """Apply (device id, reading) pairs in order, in ONE transaction, each in a savepoint of its
        own: a rejected reading (unknown device, bad time, flood) is rolled back alone and comes back
        as its ``Rejected`` in the answer, in its place. A database error aborts the whole call (the
        caller retries it; readings already applied are then duplicates, applied once).

        Per reading: the insert (with the flood check in it) and the update of the station's
        counters; the devices are read, and those that spoke are touched, once per call."""
        now = now or utcnow()
        zone = ZoneInfo(self._ops.timezone_of(None))
        answers: list[Recorded | Rejected] = []
        with self._stations.transaction() as conn:
            devices = self._devices(conn, {device_id for device_id, _ in readings})
            for device_id, reading in readings:
                try:
                    with self._stations.transaction():  # a savepoint: a rejection undoes this reading only
                        answers.append(self._apply(conn, device_id, devices.get(device_id), reading, zone, now))
                except Rejected as exc:
                    answers.append(exc)
            spoke = {device_id for (device_id, _), done in zip(readings, answers)
                     if isinstance(done, Recorded) and done.applied}
            if spoke:
                conn.execute(text("UPDATE sensor_device SET last_seen_at = :now, offline_since = NULL"
                                  " WHERE device_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                             {"ids": sorted(spoke), "now": to_db(now, conn.dialect.name)})
            for station_id in sorted({devices[d].station_id for d in spoke if devices[d].offline_since is not None}):
                self._back_online(conn, station_id, now)
        return answers

    @staticmethod
    def _devices(conn, device_ids: set[str]) -> dict[str, Any]:
        if not device_ids:
            return {}
        query = text("SELECT device_id, station_id, offline_since FROM sensor_device WHERE device_id IN :ids"
                     ).bindparams(bindparam("ids", expanding=True))
        return {row.device_id: row for row in conn.execute(query, {"ids": sorted(device_ids)})}

    def _apply(self, conn, device_id: str, device, reading: Reading, zone: ZoneInfo, now: datetime) -> Recorded:
        check_time(reading.ts, now)
        if device is None:
            raise Rejected("unknown_device", f"no device {device_id!r} is registered")
        d = conn.dialect.name
        start, end = _minute(reading.ts)
        ts = to_db(reading.ts, d)
        # The flood check is part of the insert (no extra round trip); nothing inserted means a
        # repeat of a stored reading, or else a flood.
        inserted = conn.execute(text(
            "INSERT INTO sensor_reading (device_id, ts, people_in, nh3, h2s, received_at)"
            " SELECT :dev, :ts, :n, :nh3, :h2s, :now WHERE (SELECT count(*) FROM sensor_reading r"
            "  WHERE r.device_id = :dev AND r.ts >= :m0 AND r.ts < :m1) < :most"
            " ON CONFLICT (device_id, ts) DO NOTHING"),
            {"dev": device_id, "ts": ts, "n": reading.people_in, "nh3": reading.nh3, "h2s": reading.h2s,
             "now": to_db(now, d), "m0": to_db(start, d), "m1": to_db(end, d),
             "most": MAX_READINGS_PER_MINUTE}).rowcount == 1
        if not inserted:
            stored = conn.execute(text("SELECT 1 FROM sensor_reading WHERE device_id = :dev AND ts = :ts"),
                                  {"dev": device_id, "ts": ts}).first()
            if stored is not None:  # a redelivery: applied before, nothing to do
                return Recorded(False, device.station_id, None, False)
            raise Rejected("flood", f"more than {MAX_READINGS_PER_MINUTE} readings from {device_id!r} "
                                    "within one minute")
        day = reading.ts.astimezone(zone).date().isoformat()
        counters = conn.execute(text(
            "UPDATE station_cleaning SET"
            " visitors_since_cleaning = CASE WHEN last_cleaned_at IS NULL OR last_cleaned_at < :ts"
            "   THEN visitors_since_cleaning + :n ELSE visitors_since_cleaning END,"
            " visitors_today = CASE WHEN visitors_day = :day THEN visitors_today + :n"
            "   WHEN visitors_day IS NULL OR visitors_day < :day THEN :n ELSE visitors_today END,"
            " visitors_day = CASE WHEN visitors_day IS NULL OR visitors_day < :day THEN :day"
            "   ELSE visitors_day END,"
            " nh3_latest = COALESCE(:nh3, nh3_latest), h2s_latest = COALESCE(:h2s, h2s_latest)"
            " WHERE station_id = :sid RETURNING visitors_since_cleaning, visitor_threshold, grade,"
            " cleaning_work_order_id"),
            {"sid": device.station_id, "ts": ts, "n": reading.people_in, "day": day,
             "nh3": reading.nh3, "h2s": reading.h2s}).first()
        if counters is None:  # no rule row (a device bound outside `register`): counted nowhere
            return Recorded(True, device.station_id, None, False)
        open_id, opened = counters.cleaning_work_order_id, False
        why = self._why_clean(counters, reading)
        if why and open_id is None:
            open_id = self._open(device.station_id, CLEANING, why, now)
            opened = open_id is not None
            if opened:
                conn.execute(text("UPDATE station_cleaning SET cleaning_work_order_id = :wo"
                                  " WHERE station_id = :sid"), {"wo": open_id, "sid": device.station_id})
        return Recorded(True, device.station_id, open_id, opened)

    @staticmethod
    def _why_clean(counters, reading: Reading) -> str | None:
        if counters.visitors_since_cleaning >= counters.visitor_threshold:
            return (f"客流 {counters.visitors_since_cleaning} 人次 ≥ 阈值 {counters.visitor_threshold} / "
                    f"{counters.visitors_since_cleaning} visitors since the last cleaning "
                    f"(threshold {counters.visitor_threshold})")
        limits = GRADES[counters.grade]
        for gas, label in (("nh3", "NH3 氨"), ("h2s", "H2S 硫化氢")):
            value = getattr(reading, gas)
            if value is not None and value > limits[gas]:
                return (f"{label} {value:g} mg/m³ > {limits[gas]:g} mg/m³ "
                        f"(GB/T 17217, {GRADES[counters.grade]['names']['zh-CN']})")
        return None

    def _open(self, station_id: int, category: str, why: str, now: datetime) -> int | None:
        """Open (or join) the station's work order of this category; None when the station no longer
        takes reports (removed)."""
        try:
            done = self._ops.submit_report(ReportInput(category=category, station_id=station_id, source="sensor",
                                                       description=why), now=now)
        except NotFound:
            return None
        return done.work_order_id

    def _back_online(self, conn, station_id: int, now: datetime) -> None:
        """A device of the station speaks again: once none of them is silent, resolve the
        station's sensor_offline work order."""
        silent = conn.execute(text("SELECT 1 FROM sensor_device WHERE station_id = :sid AND offline_since IS NOT NULL"
                                   " LIMIT 1"), {"sid": station_id}).first()
        if silent is None:
            wo = self._ops.store.open_work_order(station_id, OFFLINE)
            if wo is not None:
                self._ops.resolve(wo.id, "sensor", None, "传感器恢复上报 / the sensor reports again", now)

    def check_offline(self, now: datetime | None = None) -> list[str]:
        """Mark devices silent longer than their station's limit as offline (once each) and open
        or join the station's sensor_offline work order. Run by ``ops tick``."""
        now = now or utcnow()
        with self._stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT d.device_id, d.station_id, d.registered_at, d.last_seen_at, c.offline_after_s"
                " FROM sensor_device d LEFT JOIN station_cleaning c ON c.station_id = d.station_id"
                " WHERE d.offline_since IS NULL")).all()
        silent = []
        for r in rows:
            limit = timedelta(seconds=r.offline_after_s or DEFAULT_OFFLINE_AFTER.total_seconds())
            if from_db(r.last_seen_at or r.registered_at) < now - limit:
                silent.append(r)
        marked = []
        for r in silent:
            with self._stations.transaction() as conn:
                changed = conn.execute(text(
                    "UPDATE sensor_device SET offline_since = :now WHERE device_id = :dev AND offline_since IS NULL"),
                    {"dev": r.device_id, "now": to_db(now, conn.dialect.name)}).rowcount == 1
                if changed:
                    self._open(r.station_id, OFFLINE,
                               f"传感器 {r.device_id} 超过 {(r.offline_after_s or 0) // 60} 分钟未上报 / "
                               f"device {r.device_id} silent since "
                               f"{from_db(r.last_seen_at or r.registered_at):%Y-%m-%d %H:%M} UTC", now)
                    marked.append(r.device_id)
        return marked

    # -- the cleaner on site ------------------------------------------------------------

    def cleaned(self, principal, station_id: int, now: datetime | None = None) -> int | None:
        """The cleaner's check-in at the station (the door's QR code, logged in): resolves the open
        cleaning work order and starts the count again. Any staff member of the station's
        organisation may check in (cleaners are workers); others see no such station (404).
        Returns the work order resolved, if there was one."""
        now = now or utcnow()
        station = self._stations.get(station_id)
        organisation_id, _ = self._ops.accounts.station_owner(station_id) if station else (None, None)
        if station is None or (principal.role != "admin" and organisation_id != principal.organisation_id):
            raise NotFound(f"No station with id {station_id}.", "station_id")
        with self._stations.transaction():
            wo = self._ops.store.open_work_order(station_id, CLEANING)
            resolved = self._ops.resolve(wo.id, principal.email, principal.id, "保洁员到场签到 / cleaner checked in "
                                         "on site", now) if wo else None
            reset_count(self._stations, station_id, now)
        return resolved.id if resolved else None

    # -- the operations centre (IOC) ------------------------------------------------------

    def ioc(self, principal, now: datetime | None = None) -> dict:
        """The operations centre's view of the stations in the caller's care: each station's state
        (``IOC_STATES``, the first that applies), today's visitors and its work orders."""
        now = now or utcnow()
        rows = self._ops.stations_of(principal)  # Forbidden for workers: they look after no stations
        ids = [r["id"] for r in rows]
        today = now.astimezone(ZoneInfo(self._ops.timezone_of(None))).date().isoformat()
        sensing = self.station_sensing(ids, today)
        hours = self._hours(ids)
        scope = scope_for(principal)
        open_orders = self._ops.store.work_orders(scope, states=sorted(OPEN_STATES), limit=100_000)
        by_station: dict[int, list] = {}
        for wo in open_orders:
            by_station.setdefault(wo.station_id, []).append(wo)
        stations = []
        for row in rows:
            orders = by_station.get(row["id"], [])
            sensed = sensing.get(row["id"])
            h = hours[row["id"]]
            open_state = evaluate_station(h["opening_hours"], now, row["timezone"], h["closure_reason"],
                                          from_db(h["closure_until"])).state
            facts = {
                "overdue": any(wo.overdue(now) for wo in orders),
                "cleaning_due": any(wo.category == CLEANING for wo in orders),
                "sensor_offline": bool(sensed and sensed["devices_offline"]),
                "fault": bool(h["out_of_order"]) or any(wo.category not in (CLEANING, OFFLINE) for wo in orders),
                "closed": open_state == "closed",
                "unknown": open_state == "unknown",
                "open": True,
            }
            stations.append({
                "id": row["id"], "name": row["name"], "kind": row["kind"], "lat": row["lat"], "lng": row["lng"],
                "state": next(state for state in IOC_STATES if facts[state]),
                "visitors_today": sensed["visitors_today"] if sensed else None,
                "visitors_since_cleaning": sensed["visitors_since_cleaning"] if sensed else None,
                "visitor_threshold": sensed["visitor_threshold"] if sensed else None,
                "sensors": {"devices": sensed["devices"] if sensed else 0,
                            "offline": sensed["devices_offline"] if sensed else 0},
                "work_orders": {"open": len(orders), "overdue": sum(wo.overdue(now) for wo in orders)},
            })
        return {"at": now, "stations": stations,
                "counts": {state: sum(s["state"] == state for s in stations) for state in IOC_STATES},
                "visitors_today": sum(s["visitors_today"] or 0 for s in stations),
                "work_orders": self._ops.overview(principal, now)}

    def _hours(self, station_ids: list[int]) -> dict[int, dict]:
        if not station_ids:
            return {}
        query = text("SELECT id, opening_hours, closure_reason, closure_until, out_of_order FROM station"
                     " WHERE id IN :ids").bindparams(bindparam("ids", expanding=True))
        with self._stations.reading() as conn:
            return {r.id: dict(r._mapping) for r in conn.execute(query, {"ids": list(station_ids)})}

    def station_sensing(self, station_ids: list[int], today: str) -> dict[int, dict]:
        """Per station: today's visitors, visitors since cleaning, threshold, devices and silent devices."""
        if not station_ids:
            return {}
        query = text(
            "SELECT c.station_id, c.visitor_threshold, c.visitors_since_cleaning, c.visitors_day, c.visitors_today,"
            " c.nh3_latest, c.h2s_latest, c.grade,"
            " (SELECT count(*) FROM sensor_device d WHERE d.station_id = c.station_id) AS devices,"
            " (SELECT count(*) FROM sensor_device d WHERE d.station_id = c.station_id"
            "  AND d.offline_since IS NOT NULL) AS silent"
            " FROM station_cleaning c WHERE c.station_id IN :ids").bindparams(bindparam("ids", expanding=True))
        with self._stations.reading() as conn:
            rows = conn.execute(query, {"ids": list(station_ids)}).all()
        return {r.station_id: {
            "visitors_today": r.visitors_today if r.visitors_day == today else 0,
            "visitors_since_cleaning": r.visitors_since_cleaning, "visitor_threshold": r.visitor_threshold,
            "devices": r.devices, "devices_offline": r.silent, "grade": r.grade,
            "nh3": r.nh3_latest, "h2s": r.h2s_latest,
        } for r in rows}

