"""/api/v1/operators: operators (battery-swap brands, charging networks) push their cabinets' live
status, in GBFS station_status terms (app.stations.live), with a bearer token of one of their users.

``<operator>`` is the organisation's code; ``<source_id>`` (and a batch item's ``station_id``, as in
GBFS) is the cabinet's source id among the stations assigned to that organisation. Thin handlers:
the declared body, one call (app.ops.feeds.push), the answer.
"""
from __future__ import annotations


from app.api import bodies
from app.api.blueprint import bp, ops, stale_after_s, store
from app.api.contract import STORE_DOWN, endpoint, validate_item
from app.api.errors import ApiError
from app.api.ops import staff
from app.api.payloads import LiveBatchItem, LiveBatchPayload, LiveStatusPayload
from app.dbtime import utcnow
from app.ops import feeds
from app.stations.live import MAX_BATCH, Outcome, live_of

MAX_BATCH_BYTES = 512 * 1024  # 500 reports of ~1 KB at most
_REFUSED = {403: "The token's user is not of this operator's organisation.",
            404: "No such operator (organisation code), or (single) no such cabinet of it."}


def _push(caller, operator: str, reports) -> list[Outcome]:
    return feeds.push(store(), ops().accounts, caller, operator, reports, utcnow())


@endpoint(bp, "/operators/<operator>/stations/<source_id>/status", method="PATCH", query=None,
          payload=LiveStatusPayload, body=bodies.LiveAnswer, auth=staff, errors={**_REFUSED, **STORE_DOWN},
          summary="An operator reports one cabinet's status now (GBFS station_status fields).")
def operator_station_status(caller, payload: LiveStatusPayload, operator: str, source_id: str):
    """Applied only when `last_reported` is newer than the stored status; a replay or an older report
    is answered 200 with `result: ignored_older` and changes nothing."""
    try:
        report = payload.report(source_id)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc), "connectors") from None
    (outcome,) = _push(caller, operator, [report])
    if outcome.result == "invalid":
        raise ApiError(400, "invalid_parameter", outcome.reason, outcome.field)
    if outcome.result == "unknown_station":
        raise ApiError(404, "not_found", f"{operator} has no cabinet {source_id!r}.", "id")
    station = store().get(outcome.station_id)
    return {"station_id": source_id, "result": outcome.result, "reason": outcome.reason,
            "live": live_of(station, utcnow(), stale_after_s())}


@endpoint(bp, "/operators/<operator>/status", method="POST", query=None, payload=LiveBatchPayload,
          body=bodies.LiveBatchAnswer, auth=staff, max_body_bytes=MAX_BATCH_BYTES,
          errors={**_REFUSED, 413: f"More than {MAX_BATCH} stations, or a body over {MAX_BATCH_BYTES // 1024} KB.",
                  **STORE_DOWN},
          summary="An operator reports many cabinets at once; each item is answered on its own.")
def operator_status_batch(caller, payload: LiveBatchPayload, operator: str):
    """Items carry the cabinet's source id as `station_id` (as in GBFS). Results, in order:
    `applied`, `ignored_older`, `unknown_station` or `invalid` (with its reason)."""
    if len(payload.stations) > MAX_BATCH:
        raise ApiError(413, "too_large", f"At most {MAX_BATCH} stations per request, got {len(payload.stations)}.",
                       "stations")
    reports, refused = [], {}
    for i, raw in enumerate(payload.stations):
        try:
            item = validate_item(LiveBatchItem, raw, f"stations.{i}")
            reports.append(item.report(item.station_id))
        except (ApiError, ValueError) as exc:
            name = raw.get("station_id") if isinstance(raw, dict) else None
            refused[i] = Outcome(name if isinstance(name, str) else "", "invalid",
                                 exc.message if isinstance(exc, ApiError) else str(exc))
    done = iter(_push(caller, operator, reports))
    outcomes = [refused[i] if i in refused else next(done) for i in range(len(payload.stations))]
    counts = {name: sum(o.result == name for o in outcomes)
              for name in ("applied", "ignored_older", "unknown_station", "invalid")}
    return {"count": len(outcomes), **counts,
            "results": [{"station_id": o.source_id, "result": o.result, "reason": o.reason} for o in outcomes]}
