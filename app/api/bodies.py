"""What /api/v1 answers, declared as pydantic models: the OpenAPI schemas come from here.

Station fields are not repeated: their models are made from the station declaration
(app.stations.model), so a new field there appears in the document by itself. The
serializer (app.api.serialize) writes bodies of these shapes; the schema-driven tests
validate real answers against them.
"""
from __future__ import annotations

import typing
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.geo.coordsys import COORDSYS
from app.network.modes import MODE_NAMES
from app.ops.assessment import CATEGORY_FIGURES as ASSESSMENT_CATEGORY_FIGURES
from app.ops.assessment import FIGURES as ASSESSMENT_FIGURES
from app.ops.assessment import UNITS as ASSESSMENT_UNITS
from app.ops import sensors
from app.ops.categories import PRIORITIES
from app.ops.feedback import ANSWERS as FEEDBACK_ANSWERS
from app.ops.service import REPORT_SOURCES
from app.ops.workflow import CLOSING_REASONS, STATES
from app.stations.model import STATION_FIELDS
from app.stations.model import Station as StationModel
from app.stations.live import OCPI_STATUSES, RESULTS as LIVE_RESULTS, STATES as LIVE_STATES
from app.stations.ratings import MAX_TAGS, PRIOR_MEAN, PRIOR_WEIGHT
from app.stations.vocabulary import ACCESS, AMENITIES, KINDS, OPEN_STATES

Coordsys = Literal[COORDSYS]
AmenityName = Literal[tuple(AMENITIES)]
OpenState = Literal[tuple(OPEN_STATES)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Point(Body):
    lat: float
    lng: float


class Geometry(Body):
    """A GeoJSON geometry (Polygon, MultiPolygon, or an empty GeometryCollection)."""

    model_config = ConfigDict(extra="allow")
    type: str


# -- stations, from the declaration ----------------------------------------------

# Closed vocabularies are published as enums rather than plain strings.
_ENUMS: dict[str, Any] = {
    "kind": Literal[tuple(KINDS)],
    "access": Literal[tuple(ACCESS)],
    "fee": Literal["yes", "no"] | None,
    "status": Literal["active", "closed", "removed"],
}
# The dataclass's annotations, resolved (they are strings under `from __future__ import annotations`).
_STATION_TYPES = typing.get_type_hints(StationModel)
_WIRE_TYPES = {"coordinate": float, "amenities": list[AmenityName], "time": datetime | None}


def _station_fields(levels: tuple[str, ...], *, coordinates: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in STATION_FIELDS:
        meta = f.metadata
        if meta["public"] not in levels or (meta["wire"] == "coordinate" and not coordinates):
            continue
        annotation = _ENUMS.get(f.name) or _WIRE_TYPES.get(meta["wire"]) or _STATION_TYPES[f.name]
        out[meta["json"] or f.name] = (annotation, Field(description=meta["doc"]))
    return out


class Rating(Body):
    average: float = Field(description=f"Bayesian average of the stars: ({PRIOR_WEIGHT} × {PRIOR_MEAN} + sum of "
                                       f"stars) ÷ ({PRIOR_WEIGHT} + count), to 2 decimals.")
    count: int = Field(ge=1, description="How many ratings it has (a device's repeat within 12 h replaces its "
                                         "earlier one).")


_RATING_FIELD: dict[str, Any] = {
    "rating": (Rating | None, Field(None, description="Satisfaction rating; null when nobody has rated it.")),
}

class BatteryCount(Body):
    battery_type: str
    count: int = Field(ge=0)


class Connector(Body):
    id: str
    status: Literal[OCPI_STATUSES] = Field(description="OCPI 2.2.1 connector status; T/CEC 102 codes are mapped "
                                                       "to it (see the README); UNKNOWN while stale.")


class Live(Body):
    """The operator's last reported status. Stale (older than YIZHAN_LIVE_STALE_AFTER_S, default 5 min):
    counts null, connectors UNKNOWN — a stale count is never shown as live."""

    state: Literal[LIVE_STATES] = Field(description="fresh, stale, or none (never reported).")
    last_reported: datetime | None = Field(description="When the operator says the status was true.")
    age_s: int | None = Field(description="Seconds since last_reported, when the answer was made.")
    num_batteries_available: int | None = Field(description="Charged batteries; null unless fresh.")
    battery_types_available: list[BatteryCount] | None = Field(description="Charged batteries by type; null "
                                                                           "unless fresh.")
    num_docks_available: int | None = Field(description="Empty docks; null unless fresh.")
    is_installed: bool | None
    is_renting: bool | None = Field(description="Swapping batteries; null unless fresh.")
    connectors: list[Connector] | None = Field(description="A charging point's connectors; null when none were "
                                                           "reported.")


_LIVE_FIELD: dict[str, Any] = {
    "live": (Live, Field(description="Live status from the operator, with its freshness.")),
}

_OPEN_FIELDS: dict[str, Any] = {
    "open_state": (OpenState | None, Field(None, description="open, closed or unknown — never folded together.")),
    "next_change": (datetime | None, Field(None, description="When the open state changes next, if within a week.")),
    "closed_reason": (str | None, Field(None, description="Why staff have closed it for now (open_state is then "
                                                          "closed); null otherwise.")),
}

Station = create_model("Station", __base__=Body, **_station_fields(("summary",)), **_RATING_FIELD, **_LIVE_FIELD,
                       **_OPEN_FIELDS)
StationProperties = create_model("StationProperties", __base__=Body, **_station_fields(("summary",), coordinates=False),
                                 **_RATING_FIELD, **_LIVE_FIELD)
StationDetail = create_model(
    "StationDetail", __base__=Station, **_station_fields(("detail",)),
    amenity_states=(dict[AmenityName, Literal["yes", "no", "unknown"]],
                    Field(description="Every amenity with its state.")),
)


class NearestHit(Station):
    distance_m: float = Field(description="Geodesic distance on the WGS-84 ellipsoid.")


class NearestAnswer(Body):
    coordsys: Coordsys
    origin: Point
    at: datetime
    count: int
    results: list[NearestHit]


class SearchResult(Body):
    type: Literal["station", "street", "place"]
    id: int | None = Field(description="The station's id (open it with /stations/{id}); null for streets and places.")
    name: str
    kind: str = Field(description="A station's kind (see /meta), or the place's: street, square, neighbourhood, "
                                  "metro_station, hospital, park, marketplace, …")
    matched: Literal["name", "address", "operator"] = Field(description="The field the query matched.")
    match: Literal["exact", "prefix", "substring", "pinyin", "initials", "fuzzy"] = Field(
        description="How: the whole text, its start, inside it (characters); by full pinyin (the last syllable may "
                    "be unfinished), by initials; or, only when nothing else matched, within a typo (Latin text).")
    lat: float = Field(description="In `out_coordsys`; for a street, its point nearest `near` (else its middle).")
    lng: float
    distance_m: float | None = Field(description="Geodesic metres from `near`; null without it.")


class SearchAnswer(Body):
    query: str = Field(description="The query as searched (normalised).")
    results: list[SearchResult] = Field(description="Best first: the whole name, then its start, then the rest; "
                                                    "within each, nearest first; then station, street, place.")


class PointGeometry(Body):
    type: Literal["Point"]
    coordinates: tuple[float, float]


class StationFeature(Body):
    type: Literal["Feature"]
    id: int
    geometry: PointGeometry
    properties: StationProperties


class StationCollection(Body):
    type: Literal["FeatureCollection"]
    features: list[StationFeature]
    numberReturned: int
    limit: int
    truncated: bool = Field(description="More stations matched than `limit`.")
    coordsys: Coordsys


class CircleHit(Station):
    distance_m: float
    network_distance_m: float | None = Field(description="Along the road network; null for `method: radius`.")
    travel_minutes: float


class ServiceCircle(Body):
    method: Literal["network", "radius"]
    reason: Literal["off_network", "no_network"] | None
    mode: Literal[MODE_NAMES]
    minutes: float
    speed_kmh: float
    coordsys: Coordsys
    origin: Point
    polygon: Geometry
    area_km2: float
    count: int
    truncated: bool
    results: list[CircleHit]


class ServiceArea(Body):
    station_id: int
    mode: Literal[MODE_NAMES]
    minutes: int
    coordsys: Coordsys
    area_km2: float
    road_km: float
    on_network: bool
    computed_at: datetime | None
    polygon: Geometry


class Serving(Body):
    mode: Literal[MODE_NAMES]
    minutes: int
    coordsys: Coordsys
    count: int
    results: list[Station]


class StationBrief(Body):
    id: int
    name: str
    kind: Literal[tuple(KINDS)]
    road_km: float
    area_km2: float


class Coverage(Body):
    mode: Literal[MODE_NAMES]
    minutes: int
    coordsys: Coordsys
    stations: int
    stations_without_service_area: int
    road_km: float
    served_road_km: float
    served_road_share: float | None
    served: Geometry
    unserved: Geometry
    serving_most: list[StationBrief]
    serving_least: list[StationBrief]


class Labels(Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    zh_CN: str = Field(alias="zh-CN")
    en: str


class Term(Body):
    id: str
    labels: Labels


class KindTerm(Term):
    core_amenity: AmenityName | None


class ModeTerm(Term):
    speed_kmh: float
    metres_per_minute: float


class Limits(Body):
    nearest: int
    bbox: int
    service_circle: int
    max_distance_m: float
    minutes: dict[str, int]
    snap_max_m: float


class RatingAnswer(Body):
    station_id: int
    stars: int = Field(ge=1, le=5)
    tags: list[str]
    replaced: bool = Field(description="true: it replaced this device's rating of the station from the last 12 h "
                                       "(answered 200); false: a new rating (201).")
    rating: Rating


class CheckInAnswer(Body):
    station_id: int
    outcome: str
    devices: int = Field(description="Distinct devices with this outcome here within 24 h.")
    reported: bool = Field(description="true: passed on as a problem report (it opened or joined a work order).")


class Brand(Body):
    code: str = Field(description="The organisation's code (the `org` filter's value).")
    name: str = Field(description="Its name, as people know it.")


class Meta(Body):
    kinds: list[KindTerm]
    amenities: list[Term]
    access: list[Term]
    open_states: list[Term]
    rating_tags: list[Term] = Field(description=f"Tags a rating may carry (at most {MAX_TAGS}).")
    checkin_outcomes: list[Term] = Field(description="What a check-in may say.")
    brands: list[Brand] = Field(description="Organisations running battery-swap or charging stations: the "
                                            "values of the searches' `org` filter a courier chooses from.")
    modes: list[ModeTerm]
    coordsys: list[Coordsys]
    timezone: str
    limits: Limits


class JsSdkConfig(Body):
    appId: str
    timestamp: int
    nonceStr: str
    signature: str


# -- staff (operations) ------------------------------------------------------------

State = Literal[STATES]


class WorkOrder(Body):
    """A work order as staff see it. Times are in the responsible organisation's time zone."""

    id: int
    station_id: int | None = Field(description="Null for a report at a place without a station.")
    station_name: str | None
    category: str = Field(description="Its problem category: the Open311 service_code.")
    category_name: Labels
    priority: Literal[PRIORITIES]
    state: State
    close_reason: Literal[tuple(CLOSING_REASONS)] | None = Field(description="Why it was closed, while closed.")
    assignee: str | None = Field(description="The e-mail of the staff member it was last given to.")
    reports: int = Field(description="How many reports it gathers (the first plus every \"me too\").")
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None = Field(description="The clock that runs now: the response limit until someone "
                                                "responds, then the resolution limit; null once fixed or closed.")
    response_due_at: datetime
    resolution_due_at: datetime
    due_estimated: bool = Field(description="A limit in working days was counted without China's holiday "
                                            "calendar for that year (not published yet).")
    overdue: bool = Field(description="`due_at` has passed.")
    lat: float = Field(description="WGS-84.")
    lng: float = Field(description="WGS-84.")
    description: str


class WorkOrderList(Body):
    count: int
    truncated: bool = Field(description="More work orders matched than `limit`.")
    results: list[WorkOrder]


class WorkOrderEvent(Body):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    at: datetime
    actor: str = Field(description="A staff e-mail, or `reporter`, `inspection` or `system`.")
    from_state: State | None = Field(alias="from")
    to_state: State = Field(alias="to")
    note: str
    public: bool
    reason: str | None
    assignee: str | None


class ReportItem(Body):
    id: int
    created_at: datetime
    source: Literal[REPORT_SOURCES]
    description: str
    lat: float
    lng: float
    media_url: str | None
    phone: str | None = Field(description="Only for admins and the responsible organisation's managers "
                                          "(`contacts_shown`); null otherwise or once purged.")
    email: str | None = Field(description="As `phone`.")


class PhotoRef(Body):
    url: str = Field(description="/media/<sha256>: served to staff of the responsible organisation (and to anyone "
                                 "for public photos).")
    mime: str
    width: int
    height: int
    public: bool


FeedbackAnswer = Literal[tuple(FEEDBACK_ANSWERS)]


class WorkOrderDetail(WorkOrder):
    events: list[WorkOrderEvent] = Field(description="The append-only log, oldest first.")
    allowed_transitions: list[State] = Field(description="The states this caller may move it to now.")
    photos: list[PhotoRef]
    report_items: list[ReportItem] = Field(description="The reports it gathers, oldest first.")
    contacts_shown: bool = Field(description="Whether reporters' phone and e-mail are shown to this caller: "
                                             "admins and the responsible organisation's org and station "
                                             "managers, never workers.")
    feedback: dict[FeedbackAnswer, int] = Field(
        description="How reporters judged the handling once it was done (the tracking page's questionnaire): "
                    "devices per answer, every answer listed.")


class FailedItem(Body):
    item: str
    work_order_id: int
    joined: bool = Field(description="It joined an open work order for the same problem.")


class InspectionAnswer(Body):
    id: int
    station_id: int
    distance_m: float | None = Field(description="From the device's position to the station; null without one.")
    far: bool = Field(description="The position was more than `far_from_station_m` away.")
    far_from_station_m: float
    failed: list[FailedItem]


class StationToInspect(Body):
    id: int
    name: str
    kind: Literal[tuple(KINDS)]
    lat: float
    lng: float
    last_inspected_at: datetime | None = Field(description="In the station's time zone.")


class NotInspected(Body):
    count: int
    results: list[StationToInspect]


class ChecklistItem(Body):
    code: str
    labels: Labels
    category: str = Field(description="The problem category a failed check opens (or joins) a work order in.")


class Checklist(Body):
    kind: Literal[tuple(KINDS)]
    items: list[ChecklistItem]


class FigureDeclaration(Body):
    """One figure of the assessment, as app.ops.assessment declares it."""

    code: str = Field(description="Its key in every section's `figures`.")
    name: Labels
    unit: Literal[tuple(ASSESSMENT_UNITS)]
    unit_name: Labels
    target: float | None = Field(description="The standard's target; null when it sets none.")
    direction: Literal["higher", "lower"] = Field(description="Which way is better.")
    by_category: bool = Field(description="Also given per problem category (in `by_category`).")


class FigureValue(Body):
    value: float | None = Field(description="Null when there was nothing to compute it over (never 0 or 100).")
    n: int = Field(description="What it was computed over: answers, ratings, stations, work orders or station-days.")
    previous: float | None = Field(description="The same figure in the period before.")
    previous_n: int
    target: float | None
    met: bool | None = Field(description="Whether `value` meets `target`; null without either.")


AssessmentFigures = create_model(
    "AssessmentFigures", __base__=Body,
    **{f.code: (FigureValue, Field(description=f"{f.names['en']} ({f.unit}).")) for f in ASSESSMENT_FIGURES})
CategoryFigures = create_model(
    "CategoryFigures", __base__=Body,
    **{f.code: (FigureValue, Field(description=f"{f.names['en']} ({f.unit}).")) for f in ASSESSMENT_CATEGORY_FIGURES})


class CategoryAssessment(Body):
    category: str
    name: Labels
    figures: CategoryFigures


class RecurringAt(Body):
    station_id: int
    station_name: str | None
    work_orders: int


class FrequentProblem(Body):
    category: str
    name: Labels
    work_orders: int
    recurring_at: list[RecurringAt] = Field(description="Stations with at least two work orders of it in the period.")


class AssessmentSection(Body):
    manager: str | None = Field(description="The 站长's e-mail; null for the whole organisation.")
    stations: int
    figures: AssessmentFigures
    by_category: list[CategoryAssessment]
    frequent_problems: list[FrequentProblem]


class PeriodRef(Body):
    code: str
    start: datetime
    end: datetime = Field(description="Exclusive: local midnight after the last day.")


class OrganisationRef(Body):
    code: str
    name: str
    timezone: str


class Assessment(Body):
    """An organisation's assessment (考核) for a month or a quarter."""

    organisation: OrganisationRef
    period: PeriodRef
    previous_period: PeriodRef
    as_of: datetime
    scope: Literal["organisation", "station_manager"] = Field(
        description="`station_manager`: the caller's own figures only (`total` is null).")
    figures: list[FigureDeclaration]
    total: AssessmentSection | None
    managers: list[AssessmentSection]


# -- operators (live feeds) ----------------------------------------------------------


class LiveResult(Body):
    station_id: str = Field(description="The cabinet's source id, as sent.")
    result: Literal[LIVE_RESULTS] = Field(description="applied; ignored_older (a status as new or newer is stored: "
                                                      "replays change nothing); unknown_station (not one of this "
                                                      "operator's cabinets); invalid (see reason).")
    reason: str | None


class LiveAnswer(LiveResult):
    live: Live | None = Field(description="The station's live status now (null unless applied or ignored_older).")


class LiveBatchAnswer(Body):
    count: int
    applied: int
    ignored_older: int
    unknown_station: int
    invalid: int
    results: list[LiveResult] = Field(description="One per item, in order.")

class ReadingAnswer(Body):
    device_id: str
    ts: str = Field(description="The reading's time, as sent.")
    applied: bool = Field(description="false: this device's reading at this time was applied before (a repeat).")
    cleaning_due: bool = Field(description="The station has an open cleaning work order.")


class CleaningRule(Body):
    station_id: int
    visitor_threshold: int
    grade: Literal[tuple(sensors.GRADES)]
    limits: dict[Literal[sensors.GASES], float] = Field(description="The grade's NH3 and H2S limits, mg/m³ "
                                                                    "(GB/T 17217).")
    offline_after_s: int
    visitors_since_cleaning: int
    last_cleaned_at: datetime | None


class IocSensors(Body):
    devices: int
    offline: int


class IocWorkOrders(Body):
    open: int
    overdue: int


class IocStation(Body):
    id: int
    name: str
    kind: Literal[tuple(KINDS)]
    lat: float
    lng: float
    state: Literal[sensors.IOC_STATES] = Field(description="The first that applies, in this order: " +
                                                           ", ".join(sensors.IOC_STATES) + ".")
    visitors_today: int | None = Field(description="People counted today; null without a people counter.")
    visitors_since_cleaning: int | None
    visitor_threshold: int | None
    sensors: IocSensors
    work_orders: IocWorkOrders


class IocTotals(Body):
    open: int
    overdue: int
    fixed_today: int


class IocFeed(Body):
    at: datetime
    stations: list[IocStation]
    counts: dict[Literal[sensors.IOC_STATES], int]
    visitors_today: int
    work_orders: IocTotals


class OpenApiDocument(BaseModel):
    """This document."""

    model_config = ConfigDict(extra="allow")
    openapi: str


class ErrorDetail(Body):
    code: str
    message: str
    field: str | None


class Error(Body):
    error: ErrorDetail
