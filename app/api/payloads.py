"""JSON request bodies of /api/v1 (the staff endpoints), declared once as pydantic models.

Limits and vocabularies come from where they are declared (the workflow's states and closing
reasons, the service's text limits, the amenity vocabulary); the 400 answers and the OpenAPI
``requestBody`` schemas follow from these models. Rules that need the stored state (is this
transition allowed now, does the station have that amenity) are the service's.
"""
from __future__ import annotations

from typing import Annotated, Literal

from datetime import datetime, timezone
from typing import Any

from pydantic import AwareDatetime, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from app.api.contract import Payload, referenced
from app.ops.service import MAX_NOTE, MAX_REASON, STATION_STATUSES
from app.ops.workflow import CLOSING_REASONS, STATES
from app.ops.checkins import OUTCOMES
from app.stations import live
from app.ops import sensors
from app.stations.ratings import MAX_TAGS, TAGS
from app.stations.vocabulary import AMENITIES

Note = Annotated[str, Field(max_length=MAX_NOTE, description="Free text for the log.")]
Reason = Annotated[str | None, Field(max_length=MAX_REASON, description="Why; shown to the public where the "
                                                                        "change is public.")]


def _json_number(value):
    """A JSON number, not a string or a boolean. 12.0 is a whole number too, as JSON Schema says."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Bodies are strict (Payload); whole numbers only so far as to take 12.0 for 12.
StationId = Annotated[int, Field(ge=0, le=9223372036854775807, strict=False, description="The station's id."),
                      BeforeValidator(_json_number)]


class TransitionPayload(Payload):
    to: Literal[STATES] = Field(description="The state to move to; only moves the workflow allows from the current "
                                            "state succeed (409 otherwise).")
    note: Note = ""
    public: bool = Field(False, description="Show the note (and photos) on the reporter's tracking page and in "
                                            "Open311's status_notes.")
    assignee: Annotated[str | None, Field(
        max_length=254, description="With `to: assigned`: the staff member's e-mail (of the responsible "
                                    "organisation).")] = None
    reason: Literal[tuple(CLOSING_REASONS)] | None = Field(None, description="With `to: closed` (and only then): "
                                                                             "why it is closed.")


class StationStatusPayload(Payload):
    status: Literal[STATION_STATUSES]
    reason: Reason = None
    until: AwareDatetime | None = Field(None, description="With `temporarily_closed`: when it opens again by "
                                                          "itself (ISO 8601 with an offset; in the future). "
                                                          "Leave out: closed until reopened.")


class AmenityPayload(Payload):
    amenity: Literal[tuple(AMENITIES)] = Field(description="One of the station's amenities (see /meta).")
    out_of_order: bool = Field(description="true: broken until fixed (it stops matching that amenity filter); "
                                           "false: works again.")
    reason: Reason = None


class InspectionPayload(Payload):
    station_id: StationId
    results: dict[Annotated[str, Field(max_length=40)], bool] = Field(
        description="Every item of the station kind's checklist (/ops/checklists/{kind}) with true (passed) or "
                    "false (failed: opens or joins a work order).")
    lat: Annotated[float, Field(ge=-90, le=90, description="The device's WGS-84 latitude.")] | None = None
    lng: Annotated[float, Field(ge=-180, le=180, description="The device's WGS-84 longitude.")] | None = None
    note: Note = ""


class RatingPayload(Payload):
    stars: Literal[1, 2, 3, 4, 5] = Field(description="1 (bad) to 5 (very good).")
    tags: list[Literal[tuple(TAGS)]] = Field(default_factory=list, max_length=MAX_TAGS,
                                            description="Tags from /meta's rating_tags; repeats count once.")


class CheckInPayload(Payload):
    outcome: Literal[tuple(OUTCOMES)] = Field(description="What the person found: worked, closed, not_found or "
                                                           "info_wrong (labels in /meta's checkin_outcomes).")


# -- operators: live status in GBFS station_status terms -------------------------------

Count = Annotated[int, Field(ge=0, le=live.MAX_COUNT, strict=False), BeforeValidator(_json_number)]
_LAST_POSIX = 7_258_118_400  # 2200-01-01


def _posix_or_iso(value):
    """POSIX seconds (as GBFS writes last_reported) as a UTC time, or ISO 8601 text as its time."""
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise PydanticCustomError("datetime_type", "Input should be POSIX seconds or an ISO 8601 time")
    if isinstance(value, (int, float)):
        if not 0 <= value <= _LAST_POSIX:
            raise PydanticCustomError("datetime_type", "POSIX seconds must be between 0 and {hi}", {"hi": _LAST_POSIX})
        return datetime.fromtimestamp(int(value), timezone.utc)
    if isinstance(value, str):  # a strict body takes a time only as text, so it is read here
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise PydanticCustomError("datetime_parsing", "Input should be an ISO 8601 time with an offset") from None
    return value


LastReported = Annotated[AwareDatetime, BeforeValidator(_posix_or_iso), WithJsonSchema({"anyOf": [
    {"type": "integer", "minimum": 0, "maximum": _LAST_POSIX}, {"type": "string", "format": "date-time"}]})]
BatteryType = Annotated[str, Field(min_length=1, max_length=live.BATTERY_TYPE_MAX_LENGTH,
                                   pattern=live.BATTERY_TYPE_PATTERN.pattern)]


class BatteryCountIn(Payload):
    battery_type: BatteryType
    count: Count


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


class ConnectorIn(Payload):
    """A connector with exactly one of ``status`` (OCPI) and ``tcec_status`` (T/CEC 102)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["status"]}, {"required": ["tcec_status"]}]})
    id: Annotated[str, Field(min_length=1, max_length=live.CONNECTOR_ID_MAX_LENGTH)]
    # Absent, not null, when the other one is given: so the schema has no null default.
    status: Literal[live.OCPI_STATUSES] = Field(None, description="OCPI 2.2.1 status.",
                                                json_schema_extra=_no_default)
    tcec_status: Literal[tuple(live.TCEC_TO_OCPI)] = Field(
        None, json_schema_extra=_no_default, description="Or a T/CEC 102 status code: " + ", ".join(
            f"{code} {label} → {live.TCEC_TO_OCPI[code]}" for code, label in live.TCEC_LABELS.items()) + ".")

    @model_validator(mode="after")
    def _one_status(self):
        live.connector_status(self.status, self.tcec_status)  # ValueError unless exactly one
        return self


class LiveStatusPayload(Payload):
    """A cabinet's status now (GBFS station_status fields; connectors in OCPI terms)."""

    last_reported: LastReported = Field(
        description="When this status was true: POSIX seconds (as in GBFS) or ISO 8601 with an offset. Applied "
                    "only if newer than the stored one; refused if more than "
                    f"{live.MAX_CLOCK_SKEW_S} s in the future.")
    num_batteries_available: Count | None = Field(None, description="Charged batteries (GBFS: num_bikes_available).")
    battery_types_available: list[BatteryCountIn] = Field(
        default_factory=list, max_length=live.MAX_BATTERY_TYPES,
        description="Charged batteries by type; the counts add up to num_batteries_available.")
    num_docks_available: Count | None = None
    is_installed: bool = True
    is_renting: bool = Field(True, description="Swapping batteries now.")
    connectors: list[ConnectorIn] = Field(default_factory=list, max_length=live.MAX_CONNECTORS,
                                          description="A charging point's connectors, each with `status` (OCPI) or "
                                                      "`tcec_status` (T/CEC 102).")

    def report(self, source_id: str) -> live.LiveReport:
        """As the domain's report; ValueError for a connector without exactly one status."""
        return live.LiveReport(
            source_id=source_id, last_reported=self.last_reported, num_batteries_available=self.num_batteries_available,
            battery_types=tuple((b.battery_type, b.count) for b in self.battery_types_available),
            num_docks_available=self.num_docks_available, is_installed=self.is_installed,
            is_renting=self.is_renting,
            connectors=tuple((c.id, live.connector_status(c.status, c.tcec_status)) for c in self.connectors),
        )


SourceId = Annotated[str, Field(min_length=1, max_length=live.SOURCE_ID_MAX_LENGTH,
                                description="The cabinet's source id (GBFS station_id).")]


class LiveBatchItem(LiveStatusPayload):
    station_id: SourceId


class LiveBatchPayload(Payload):
    stations: list[Annotated[Any, WithJsonSchema(referenced(LiveBatchItem))]] = Field(
        json_schema_extra={"maxItems": live.MAX_BATCH},
        description=f"At most {live.MAX_BATCH} (more: 413). Each item is judged on its own: a bad one is answered "
                    "`invalid` and the others are applied.")

class ReadingPayload(Payload):
    """A sensor reading: the same fields and bounds as the MQTT payload (app.ops.sensors)."""

    ts: AwareDatetime = Field(description="When it was measured: ISO 8601 with an offset; at most "
                                          f"{int(sensors.MAX_CLOCK_AHEAD.total_seconds() // 60)} minutes ahead, "
                                          f"at most {sensors.MAX_READING_AGE.days} days old.")
    people_in: Annotated[int, Field(ge=0, le=sensors.MAX_PEOPLE_IN, strict=False,
                                    description="People who entered since the device's previous reading."),
                         BeforeValidator(_json_number)]
    nh3: Annotated[float, Field(ge=0, le=sensors.MAX_GAS_MG_M3, strict=False, description="Ammonia, mg/m³.")] \
        | None = None
    h2s: Annotated[float, Field(ge=0, le=sensors.MAX_GAS_MG_M3, strict=False,
                                description="Hydrogen sulphide, mg/m³.")] | None = None


class CleaningRulePayload(Payload):
    visitor_threshold: Annotated[int, Field(ge=sensors.THRESHOLD_RANGE[0], le=sensors.THRESHOLD_RANGE[1],
                                            strict=False, description="Visitors between cleanings."),
                                 BeforeValidator(_json_number)] | None = None
    grade: Literal[tuple(sensors.GRADES)] | None = Field(None, description="The toilet's grade (一类/二类/三类), "
                                                                           "which sets its NH3 and H2S limits.")
    offline_after_s: Annotated[int, Field(ge=sensors.OFFLINE_AFTER_RANGE_S[0], le=sensors.OFFLINE_AFTER_RANGE_S[1],
                                          strict=False, description="Seconds a device may be silent before it is "
                                                                    "reported offline."),
                               BeforeValidator(_json_number)] | None = None
