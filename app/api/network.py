"""/api/v1 routes for the 15-minute service circle, service areas and coverage."""
from __future__ import annotations

from app.api import bodies, serialize
from app.api.args import CircleArgs, CoverageArgs, ServiceAreaArgs, ServingArgs
from app.api.blueprint import bp, fresh_since, graphs, speeds_kmh, store, timezone
from app.api.contract import STORE_DOWN, endpoint
from app.api.errors import ApiError
from app.geo.geodesic import Box
from app.network import service


def _graph(mode: str):
    entry = graphs().get(store(), mode)
    return entry[1] if entry else None


@endpoint(bp, "/service-circle", query=CircleArgs, body=bodies.ServiceCircle, errors=STORE_DOWN,
          summary="The 15-minute service circle: what can be reached from a point, on the road network.")
def service_circle(args: CircleArgs):
    """`method` is `network` when the point is within 300 m of the road network (travel times
    along it, snap legs included); otherwise `radius`, a straight-line circle labelled as such,
    with `reason` `off_network` or `no_network`."""
    lat, lng = args.point
    circle = service.service_circle(
        store(), _graph(args.mode), lat, lng,
        minutes=args.minutes, mode=args.mode, speed_kmh=speeds_kmh()[args.mode],
        flt=args.station_filter(fresh_since()), at=args.instant(timezone()), limit=args.limit,
    )
    return serialize.service_circle(circle, (lat, lng), args.answer_in)


@endpoint(bp, "/stations/<int(max=9223372036854775807):station_id>/service-area", query=ServiceAreaArgs,
          body=bodies.ServiceArea, errors={404: "No such station, or not computed yet.", **STORE_DOWN},
          summary="A station's precomputed service area: where it can be reached from in `minutes`.")
def station_service_area(args: ServiceAreaArgs, station_id: int):
    if store().get(station_id) is None:
        raise ApiError(404, "not_found", f"No station with id {station_id}.", "id")
    area = store().service_area(station_id, args.mode, args.minutes)
    if area is None:
        raise ApiError(
            404, "not_computed",
            f"No {args.minutes}-minute {args.mode} service area for station {station_id} yet; "
            f"run `flask --app wsgi network service-areas --minutes {args.minutes} --mode {args.mode}`.",
            "id",
        )
    return serialize.service_area(area, args.answer_in)


@endpoint(bp, "/stations/serving", query=ServingArgs, body=bodies.Serving, errors=STORE_DOWN,
          summary="Which stations serve this address (it lies in their precomputed service area).")
def stations_serving(args: ServingArgs):
    lat, lng = args.point
    found = store().stations_serving(lat, lng, args.mode, args.minutes, args.station_filter())
    return serialize.serving(found, args.mode, args.minutes, args.answer_in)


@endpoint(bp, "/coverage", query=CoverageArgs, body=bodies.Coverage, errors=STORE_DOWN,
          summary="For planners: the area served by matching stations in a box, what is unserved, "
                  "and the share of road length served.")
def coverage(args: CoverageArgs):
    south, west, north, east = args.box_wgs84
    result = service.coverage(
        store(), _graph(args.mode), Box(south, west, north, east),
        mode=args.mode, minutes=args.minutes, flt=args.station_filter(),
    )
    return serialize.coverage(result, args.mode, args.minutes, args.answer_in)
