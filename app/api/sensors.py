"""/api/v1/sensors/<device_id>/readings (a device, with its own token) and the staff endpoints of
sensor-triggered cleaning: a station's cleaning rule and the operations centre's feed (/ops/ioc).

Thin handlers: the declared body, one call to app.ops.sensors, one answer. A device's token is
not a staff token: the readings endpoint checks it itself (401 without a valid one, 403 for another
device's), so it stays out of the staff security scheme.
"""
from __future__ import annotations

from flask import current_app

from app import auth  # the module: app.auth imports this package
from app.api import bodies
from app.api.blueprint import bp
from app.api.contract import STORE_DOWN, endpoint
from app.api.errors import ApiError
from app.api.ops import STATION, staff
from app.api.payloads import CleaningRulePayload, ReadingPayload
from app.dbtime import utcnow
from app.ops.sensors import Reading, Rejected, Sensors


def _sensors() -> Sensors:
    return Sensors(current_app.extensions["yizhan_ops"])


def _rule(rule) -> dict:
    return {"station_id": rule.station_id, "visitor_threshold": rule.visitor_threshold, "grade": rule.grade,
            "limits": rule.limits, "offline_after_s": rule.offline_after_s,
            "visitors_since_cleaning": rule.visitors_since_cleaning, "last_cleaned_at": rule.last_cleaned_at}


@endpoint(bp, "/sensors/<string(maxlength=64):device_id>/readings", method="POST", status=201, query=None,
          payload=ReadingPayload, body=bodies.ReadingAnswer,
          also={200: "This device's reading at this time was applied before; nothing changed."},
          errors={401: "No device token, or one no device has.", 403: "The token belongs to another device.",
                  429: "More readings from this device within one minute (of its clock) than a counter sends.",
                  **STORE_DOWN},
          summary="A people counter's (or gas sensor's) reading, with the device's bearer token.")
def sensor_reading(payload: ReadingPayload, device_id: str):
    """The same reading as published on MQTT `yizhan/sensors/{device_id}/reading`. Applied once per
    device and `ts`; visitors reaching the station's threshold, or NH3 / H2S above its grade's limit,
    open its cleaning work order."""
    sensors = _sensors()
    sensors.authenticate(device_id, auth.bearer_token())
    try:
        done = sensors.record(device_id, Reading(payload.ts, payload.people_in, payload.nh3, payload.h2s), utcnow())
    except Rejected as exc:
        if exc.reason == "flood":
            raise ApiError(429, "rate_limited", exc.message) from None
        raise ApiError(400, "out_of_range", exc.message[0].upper() + exc.message[1:] + ".", exc.field) from None
    body = {"device_id": device_id, "ts": payload.ts.isoformat(), "applied": done.applied,
            "cleaning_due": done.cleaning_work_order_id is not None}
    return body, (201 if done.applied else 200)


@endpoint(bp, STATION + "/cleaning-rule", method="PATCH", query=None, payload=CleaningRulePayload,
          body=bodies.CleaningRule, auth=staff,
          errors={403: "The caller sees the station, but the role may not change it.",
                  404: "No such station in the caller's organisation.", **STORE_DOWN},
          summary="A station's sensor cleaning rule: visitor threshold, toilet grade (gas limits), offline time.")
def ops_cleaning_rule(caller, payload: CleaningRulePayload, station_id: int):
    """Fields left out stay as they are (`{}` reads the rule). Answers the rule as it is now, with the
    grade's gas limits and the visitors counted since the last cleaning."""
    ops = current_app.extensions["yizhan_ops"]
    ops.managed_station(caller, station_id)
    return _rule(_sensors().set_rule(station_id, threshold=payload.visitor_threshold, grade=payload.grade,
                                     offline_after_s=payload.offline_after_s))


@endpoint(bp, "/ops/ioc", query=None, body=bodies.IocFeed, auth=staff,
          errors={403: "Workers look after no stations.", **STORE_DOWN},
          summary="The operations centre: the caller's stations with their state, today's visitors, work orders.")
def ops_ioc(caller):
    """What /staff/ioc polls. Stations of the caller's organisation only (station managers: theirs)."""
    feed = _sensors().ioc(caller, utcnow())
    totals = feed["work_orders"]
    feed["work_orders"] = {"open": totals["open"], "overdue": totals["overdue"], "fixed_today": totals["fixed_today"]}
    return feed
