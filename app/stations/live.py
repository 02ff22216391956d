"""Live status of battery-swap cabinets and charging points, as their operators report it
(issue #9 §3), in GBFS ``station_status`` terms; connectors in OCPI terms.

An operator is an organisation; its cabinets are the stations assigned to it (``station_ops``),
addressed by their ``source_id`` (``stations assign`` keeps those unique per organisation). A
report is applied only when its ``last_reported`` is newer than the stored one: a conditional
UPDATE of the station row, so a replay or an out-of-order report changes nothing, on both stores
and under concurrency (PostgreSQL re-checks the condition on the row it waited for; SQLite has one
writer at a time).

Freshness is explicit: a status older than the stale time is served as unknown (``state:
"stale"``, counts null, connectors UNKNOWN), never as a live count.

No Flask here.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text

from app.dbtime import to_db
from app.stations.model import Station

DEFAULT_STALE_AFTER_S = 300  # "older than 5 minutes is unknown" (issue #9); YIZHAN_LIVE_STALE_AFTER_S
# A report from further in the future than this is refused: a clock that far ahead would pin the
# status (every honest report after it would look older) until real time caught up.
MAX_CLOCK_SKEW_S = 120
MAX_BATCH = 500  # reports per batch request (more: 413)
MAX_COUNT = 10_000  # batteries, docks: more in one cabinet is a mistake
MAX_BATTERY_TYPES = 20
MAX_CONNECTORS = 64
BATTERY_TYPE_MAX_LENGTH = 40
BATTERY_TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")  # 48V20Ah, 60V24Ah, TL-48
SOURCE_ID_MAX_LENGTH = 200
CONNECTOR_ID_MAX_LENGTH = 40

# OCPI 2.2.1, mod_locations, enum Status (of an EVSE / connector).
OCPI_STATUSES = ("AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED",
                 "RESERVED", "UNKNOWN")

# T/CEC 102.4-2016 (电动汽车充换电服务信息交换 第4部分：数据传输与安全, the interconnection protocol of
# China Electricity Council's charging alliance), ConnectorStatusInfo.Status, mapped to OCPI 2.2.1:
TCEC_TO_OCPI: dict[int, str] = {
    # 离网 (offline): the connector cannot be reached, so nothing is known of it. OCPI's UNKNOWN is
    # "no status information available (also used when offline)"; INOPERATIVE or OUTOFORDER would
    # claim a fault nobody reported.
    0: "UNKNOWN",
    # 空闲 (idle): free to plug in. OCPI AVAILABLE: "able to start a new charging session".
    1: "AVAILABLE",
    # 占用（未充电） (occupied, not charging): a vehicle holds the connector without drawing power.
    # OCPI BLOCKED: "not accessible because of a physical barrier, i.e. a car".
    2: "BLOCKED",
    # 占用（充电中） (occupied, charging). OCPI CHARGING: "in use".
    3: "CHARGING",
    # 占用（预约锁定） (locked for a reservation). OCPI RESERVED: "reserved for a particular EV driver".
    4: "RESERVED",
    # 故障 (fault). OCPI OUTOFORDER: "currently out of order" (INOPERATIVE is for a connector that
    # is switched off on purpose, e.g. blocked by the operator, which a fault is not).
    255: "OUTOFORDER",
}
TCEC_LABELS = {0: "离网", 1: "空闲", 2: "占用（未充电）", 3: "占用（充电中）", 4: "占用（预约锁定）", 255: "故障"}

EARLIEST_YEAR, LATEST_YEAR = 1970, 2199  # what a live status's time may say (POSIX seconds up to 2200)
RESULTS = ("applied", "ignored_older", "unknown_station", "invalid")
STATES = ("fresh", "stale", "none")


@dataclass(frozen=True)
class LiveReport:
    """One cabinet's status (validated shapes; the rules that need the clock are ``problem``'s)."""

    source_id: str
    last_reported: datetime  # aware
    num_batteries_available: int | None = None
    battery_types: tuple[tuple[str, int], ...] = ()
    num_docks_available: int | None = None
    is_installed: bool = True
    is_renting: bool = True
    connectors: tuple[tuple[str, str], ...] = ()  # (id, OCPI status)


@dataclass(frozen=True)
class Outcome:
    source_id: str
    result: str  # one of RESULTS
    reason: str | None = None
    station_id: int | None = None
    field: str | None = None  # with ``invalid``: the report field at fault


def connector_status(status: str | None = None, tcec_status: int | None = None) -> str:
    """A connector's OCPI status from an OCPI status or a T/CEC 102 code (exactly one)."""
    if (status is None) == (tcec_status is None):
        raise ValueError("give a connector either 'status' (OCPI) or 'tcec_status' (T/CEC 102)")
    if status is not None:
        if status not in OCPI_STATUSES:
            raise ValueError(f"unknown OCPI status {status!r}")
        return status
    if tcec_status not in TCEC_TO_OCPI:
        raise ValueError(f"unknown T/CEC 102 status {tcec_status!r} (known: {', '.join(map(str, TCEC_TO_OCPI))})")
    return TCEC_TO_OCPI[tcec_status]


def problem(report: LiveReport, now: datetime) -> tuple[str, str] | None:
    """(field, why) the report cannot be applied, or None."""
    # Its own calendar date, before anything converts it: year 1 at +14:00 has no UTC equivalent.
    if not EARLIEST_YEAR <= report.last_reported.year <= LATEST_YEAR:
        return "last_reported", f"last_reported must be in the years {EARLIEST_YEAR}-{LATEST_YEAR}"
    if report.last_reported > now + timedelta(seconds=MAX_CLOCK_SKEW_S):
        return "last_reported", (f"last_reported {report.last_reported.isoformat()} is in the future (more than "
                                 f"{MAX_CLOCK_SKEW_S} s ahead of {now.isoformat(timespec='seconds')})")
    types = [t for t, _ in report.battery_types]
    if len(set(types)) != len(types):
        return "battery_types_available", "battery_types_available lists a battery_type twice"
    if report.battery_types:
        if report.num_batteries_available is None:
            return "num_batteries_available", "battery_types_available needs num_batteries_available"
        total = sum(count for _, count in report.battery_types)
        if total != report.num_batteries_available:  # GBFS: the counts add up to the station's number
            return "battery_types_available", (f"battery_types_available counts add up to {total}, not "
                                               f"num_batteries_available ({report.num_batteries_available})")
    ids = [c for c, _ in report.connectors]
    if len(set(ids)) != len(ids):
        return "connectors", "connectors lists an id twice"
    if report.num_batteries_available is None and not report.connectors:
        return "num_batteries_available", ("report num_batteries_available (a cabinet) or connectors "
                                           "(a charging point)")
    return None


_UPDATE = text(
    "UPDATE station SET live_reported_at = :at, live_batteries = :batteries, live_battery_types = :types,"
    " live_docks = :docks, live_installed = :installed, live_renting = :renting, live_connectors = :connectors"
    " WHERE id = :id AND (live_reported_at IS NULL OR live_reported_at < :at)"
)
_CABINETS = text(
    "SELECT s.source_id, s.id FROM station s JOIN station_ops so ON so.station_id = s.id"
    " WHERE so.organisation_id = :org AND s.source_id IN :ids AND s.status <> 'removed'"
).bindparams(bindparam("ids", expanding=True))


class LiveStatuses:
    """Applies operators' reports to their stations, in one transaction of the station store."""

    def __init__(self, store):
        self._store = store

    def apply(self, organisation_id: int, reports: list[LiveReport], now: datetime) -> list[Outcome]:
        """Each report's outcome, in order. A report for the same cabinet later in the list is
        judged against the earlier one (same rule: newer wins)."""
        outcomes: list[Outcome | None] = []
        valid: list[tuple[int, LiveReport]] = []
        for i, report in enumerate(reports):
            found = problem(report, now)
            outcomes.append(Outcome(report.source_id, "invalid", found[1], field=found[0]) if found else None)
            if found is None:
                valid.append((i, report))
        if not valid:
            return outcomes
        with self._store.transaction() as conn:
            dialect = conn.dialect.name
            found: dict[str, list[int]] = {}
            wanted = sorted({r.source_id for _, r in valid})
            for start in range(0, len(wanted), MAX_BATCH):
                for sid, station_id in conn.execute(_CABINETS, {"org": organisation_id,
                                                                "ids": wanted[start:start + MAX_BATCH]}):
                    found.setdefault(sid, []).append(station_id)
            for i, report in valid:
                ids = found.get(report.source_id, [])
                if len(ids) != 1:
                    outcomes[i] = Outcome(report.source_id, "unknown_station", (
                        "no cabinet of this operator has this source id" if not ids else
                        "several of this operator's stations have this source id"))
                    continue
                done = conn.execute(_UPDATE, _row(ids[0], report, dialect)).rowcount
                outcomes[i] = Outcome(report.source_id, "applied" if done else "ignored_older",
                                      None if done else "a status as new or newer is already stored", ids[0])
        return outcomes


def _row(station_id: int, report: LiveReport, dialect: str) -> dict:
    types = [{"battery_type": t, "count": n} for t, n in report.battery_types]
    connectors = [{"id": c, "status": s} for c, s in report.connectors]
    return {
        "id": station_id, "at": to_db(report.last_reported, dialect),
        "batteries": report.num_batteries_available, "types": json.dumps(types, ensure_ascii=False),
        "docks": report.num_docks_available, "installed": report.is_installed, "renting": report.is_renting,
        "connectors": json.dumps(connectors, ensure_ascii=False) if report.connectors else None,
    }


_NONE = {"state": "none", "last_reported": None, "age_s": None, "num_batteries_available": None,
         "battery_types_available": None, "num_docks_available": None, "is_installed": None,
         "is_renting": None, "connectors": None}


def live_of(station: Station, now: datetime, stale_after_s: float) -> dict:
    """What answers show as ``live``: the status with its age, or only its age once stale."""
    reported = station.live_reported_at
    if reported is None:
        return dict(_NONE)
    age = max(0.0, (now - reported).total_seconds())
    out = {"state": "fresh" if age <= stale_after_s else "stale", "last_reported": reported.isoformat(),
           "age_s": int(age)}
    connectors = json.loads(station.live_connectors) if station.live_connectors else None
    if out["state"] == "fresh":
        out.update(num_batteries_available=station.live_batteries,
                   battery_types_available=json.loads(station.live_battery_types or "[]"),
                   num_docks_available=station.live_docks, is_installed=bool(station.live_installed),
                   is_renting=bool(station.live_renting), connectors=connectors)
    else:  # a stale count is never shown as live; a connector's stale status is OCPI's UNKNOWN
        out.update(num_batteries_available=None, battery_types_available=None, num_docks_available=None,
                   is_installed=None, is_renting=None,
                   connectors=[{"id": c["id"], "status": "UNKNOWN"} for c in connectors] if connectors else None)
    return out
