"""Check-ins (Open Charge Map's model): "worked / closed / not found / info wrong" in one tap.

Each is kept. When, within a day, at least REPORT_AFTER distinct devices say a station was
closed (or could not be found), that is a problem report from the public, made through
``Ops.submit_report`` with source "web": it opens a ``closed_unexpectedly`` (or ``info_wrong``)
work order, or joins the open one ("me too"). Each further device in the window adds its report
to it; a device that repeats itself counts once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from app.dbtime import to_db
from app.ops.errors import Invalid
from app.ops.service import ReportInput

OUTCOMES: dict[str, dict[str, str]] = {
    "worked": {"zh-CN": "正常使用", "en": "Worked"},
    "closed": {"zh-CN": "没开门", "en": "Closed"},
    "not_found": {"zh-CN": "没找到", "en": "Not found"},
    "info_wrong": {"zh-CN": "信息有误", "en": "Info wrong"},
}
# Outcomes that, from enough devices, become a work order of this category.
REPORTED_AS = {"closed": "closed_unexpectedly", "not_found": "info_wrong"}
REPORT_AFTER = 3
WINDOW = timedelta(hours=24)


class UnknownStation(LookupError):
    pass


@dataclass(frozen=True)
class CheckedIn:
    station_id: int
    outcome: str
    devices: int  # distinct devices with this outcome at this station within WINDOW
    reported: bool  # this check-in was passed on as a report (opened or joined a work order)


class CheckIns:
    def __init__(self, ops):
        self._ops = ops

    def check_in(self, station_id: int, device_hash: str, outcome: str, now: datetime) -> CheckedIn:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        stations = self._ops.stations
        with stations.transaction() as conn:
            dialect = conn.dialect.name
            lock = " FOR UPDATE" if dialect == "postgresql" else ""  # counts below cannot race
            found = conn.execute(text(f"SELECT status FROM station WHERE id = :id{lock}"), {"id": station_id}).first()
            if found is None or found.status == "removed":
                raise UnknownStation(station_id)
            params = {"sid": station_id, "outcome": outcome, "dev": device_hash,
                      "since": to_db(now - WINDOW, dialect), "now": to_db(now, dialect)}
            seen = conn.execute(text(
                "SELECT 1 FROM station_checkin WHERE station_id = :sid AND outcome = :outcome"
                " AND device_hash = :dev AND created_at > :since LIMIT 1"), params).first() is not None
            conn.execute(text("INSERT INTO station_checkin (station_id, device_hash, outcome, created_at)"
                              " VALUES (:sid, :dev, :outcome, :now)"), params)
            devices = conn.execute(text(
                "SELECT count(DISTINCT device_hash) FROM station_checkin WHERE station_id = :sid"
                " AND outcome = :outcome AND created_at > :since"), params).scalar_one()
            reported = outcome in REPORTED_AS and not seen and devices >= REPORT_AFTER
            if reported:
                try:
                    self._ops.submit_report(ReportInput(
                        category=REPORTED_AS[outcome], station_id=station_id, source="web",
                        description=f"{devices} check-ins within 24 h: {OUTCOMES[outcome]['en']}"), now=now)
                except Invalid as exc:
                    if exc.field != "category":
                        raise
                    reported = False  # the organisation has dropped that category: the check-ins stay kept
        return CheckedIn(station_id, outcome, devices, reported)
