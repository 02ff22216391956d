"""Operators' live feeds: who may push for an operator, and the poller of operators' published
GBFS feeds (``gbfs.json`` → ``station_status.json``) at their ``ttl``, backing off on errors.

An operator is an organisation (its code in the URL); a push needs a user of that organisation
(or an admin). Reports go through app.stations.live either way, so a polled status obeys the
same rules as a pushed one (newer wins, no far future, valid counts).

No Flask here. The report's fields are declared once, in app.api.payloads (LiveBatchItem): a
polled GBFS record is translated into that shape and validated by the same model.
"""
from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import text

from app.dbtime import from_db, to_db
from app.ops.accounts import Accounts, Organisation, Principal
from app.ops.errors import Forbidden, Invalid, NotFound
from app.stations.live import LiveReport, LiveStatuses, Outcome

log = logging.getLogger("yizhan.feeds")

FETCH_TIMEOUT_S = 5  # each connect and read
FETCH_DEADLINE_S = 20  # the whole answer: a server dripping a byte at a time cannot hold the poller
READ_CHUNK = 64 * 1024
LOGGED_REJECTIONS = 5  # per poll; the rest are counted, so one bad feed cannot flood the log
MAX_FEED_BYTES = 5 * 1024 * 1024
MIN_POLL_S = 15  # a ttl of 0 ("changes all the time") is polled this often, not in a tight loop
MAX_POLL_S = 3600
BACKOFF_FIRST_S = 30  # then doubling per failure in a row, up to BACKOFF_MAX_S
BACKOFF_MAX_S = 3600
URL_MAX_LENGTH = 2000


class FeedError(Exception):
    """The feed could not be read or is not GBFS."""


def operator_for(accounts: Accounts, caller: Principal, code: str) -> Organisation:
    """The operator ``code`` if ``caller`` may write its status: 404 unknown, 403 another's."""
    org = accounts.organisation_by_code(code)
    if org is None:
        raise NotFound(f"No operator {code!r}.", field="operator")
    if caller.role != "admin" and caller.organisation_id != org.id:
        raise Forbidden(f"Only users of {code} may report its status.", field="operator")
    return org


def push(store, accounts: Accounts, caller: Principal, code: str, reports: list[LiveReport],
         now: datetime) -> list[Outcome]:
    org = operator_for(accounts, caller, code)
    return LiveStatuses(store).apply(org.id, reports, now)


def backoff(failures: int) -> timedelta:
    """How long to wait after ``failures`` failed polls in a row."""
    return timedelta(seconds=min(BACKOFF_FIRST_S * 2 ** max(failures - 1, 0), BACKOFF_MAX_S))


def _is_http_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and len(url) <= URL_MAX_LENGTH


def _check_url(url: str) -> str:
    if not _is_http_url(url):
        raise Invalid(f"the feed URL must be an http(s) URL of gbfs.json, got {url!r}", field="url")
    return url


def shown(url: str) -> str:
    """A feed URL as logs and the stored last error show it: without its query or user info, which
    often carry the operator's API key."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not _is_http_url(urllib.parse.urljoin(req.full_url, newurl)):
            raise urllib.error.HTTPError(req.full_url, code, "redirect to a non-http(s) URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """HTTP(S) only: no file:, ftp: or data: URLs (urlopen's default opener reads local files), and
    redirects only to http(s)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(), _HttpOnlyRedirects(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def fetch_json(url: str) -> dict:
    """GET a JSON object over http(s), within FETCH_TIMEOUT_S per read, FETCH_DEADLINE_S in all and
    MAX_FEED_BYTES; FeedError for anything else the server or the network does."""
    if not _is_http_url(url):
        raise FeedError(f"{shown(url)}: not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "Yizhan feeds"})
    deadline = time.monotonic() + FETCH_DEADLINE_S
    body = bytearray()
    try:
        with _opener().open(request, timeout=FETCH_TIMEOUT_S) as answer:
            while chunk := answer.read1(READ_CHUNK):  # what has arrived: the deadline is checked between
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise FeedError(f"{shown(url)}: larger than {MAX_FEED_BYTES // (1024 * 1024)} MB")
                if time.monotonic() > deadline:
                    raise FeedError(f"{shown(url)}: not all sent within {FETCH_DEADLINE_S} s")
    except FeedError:
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # HTTPError is a URLError; HTTPException: a broken status line, headers or chunking.
        if isinstance(exc, urllib.error.HTTPError):
            raise FeedError(f"{shown(url)}: HTTP {exc.code} {str(exc.reason)[:100]}") from None
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise FeedError(f"{shown(url)}: {type(exc).__name__}: {str(reason)[:200]}") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise FeedError(f"{shown(url)}: not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise FeedError(f"{shown(url)}: not a JSON object")
    return data


def station_status_url(discovery: dict, base: str) -> str:
    """The station_status feed's URL in a gbfs.json (v2: per language; v3: one list)."""
    data = discovery.get("data")
    if not isinstance(data, dict):
        raise FeedError("gbfs.json has no data object")
    lists = [data["feeds"]] if isinstance(data.get("feeds"), list) else [
        v.get("feeds") for v in data.values() if isinstance(v, dict)]
    for feeds in lists:
        for feed in feeds if isinstance(feeds, list) else ():
            if isinstance(feed, dict) and feed.get("name") == "station_status" and isinstance(feed.get("url"), str):
                url = urllib.parse.urljoin(base, feed["url"])
                if not _is_http_url(url):  # the operator's file names it: never a file: or ftp: URL
                    raise FeedError("gbfs.json's station_status URL is not an http(s) URL")
                return url
    raise FeedError("gbfs.json lists no station_status feed")


def gbfs_item(record) -> dict:
    """A GBFS station_status record in the push's shape (GBFS speaks of bikes and vehicles; a
    battery-swap operator's feed counts batteries in them). Yizhan's own names are taken too."""
    if not isinstance(record, dict):
        return {"station_id": None}
    item = {"station_id": record.get("station_id"), "last_reported": record.get("last_reported")}
    batteries = record.get("num_batteries_available", record.get("num_vehicles_available",
                                                                 record.get("num_bikes_available")))
    if batteries is not None:
        item["num_batteries_available"] = batteries
    types = record.get("battery_types_available")
    if types is None and isinstance(record.get("vehicle_types_available"), list):
        types = [{"battery_type": t.get("vehicle_type_id"), "count": t.get("count")} if isinstance(t, dict) else t
                 for t in record["vehicle_types_available"]]
    if types is not None:
        item["battery_types_available"] = types
    for name in ("num_docks_available", "is_installed", "is_renting", "connectors"):
        if name in record:
            item[name] = record[name]
    if isinstance(item["last_reported"], str) and item["last_reported"].isdigit():
        item["last_reported"] = int(item["last_reported"])
    return item


@dataclass(frozen=True)
class Feed:
    organisation_id: int
    code: str
    url: str
    next_poll_at: datetime
    failures: int


@dataclass(frozen=True)
class PollResult:
    code: str
    ok: bool
    applied: int = 0
    ignored: int = 0
    rejected: int = 0
    error: str | None = None
    next_poll_at: datetime | None = None


class FeedPoller:
    """Polls the operators' feeds that are due; each poll's outcome is kept with the feed."""

    def __init__(self, store, accounts: Accounts, fetch=fetch_json):
        self._store = store
        self._accounts = accounts
        self._fetch = fetch

    def set_feed(self, code: str, url: str | None, now: datetime) -> None:
        """Poll ``url`` (an operator's gbfs.json) for organisation ``code`` from now on; None: stop."""
        org = self._accounts.organisation_by_code(code)
        if org is None:
            raise NotFound(f"no organisation {code!r}", field="code")
        with self._store.transaction() as conn:
            conn.execute(text("DELETE FROM operator_feed WHERE organisation_id = :org"), {"org": org.id})
            if url is not None:
                conn.execute(text("INSERT INTO operator_feed (organisation_id, url, next_poll_at)"
                                  " VALUES (:org, :url, :now)"),
                             {"org": org.id, "url": _check_url(url), "now": to_db(now, conn.dialect.name)})

    def feeds(self) -> list[Feed]:
        with self._store.reading() as conn:
            rows = conn.execute(text(
                "SELECT f.organisation_id, o.code, f.url, f.next_poll_at, f.failures FROM operator_feed f"
                " JOIN organisation o ON o.id = f.organisation_id ORDER BY f.next_poll_at, o.code")).all()
        return [Feed(r.organisation_id, r.code, r.url, from_db(r.next_poll_at), r.failures) for r in rows]

    def counters(self, code: str) -> dict:
        """What the feed's polls have done so far (applied, ignored, rejected, failures, last error)."""
        with self._store.reading() as conn:
            row = conn.execute(text(
                "SELECT f.applied_total, f.ignored_total, f.rejected_total, f.failures, f.last_error,"
                " f.next_poll_at, f.last_polled_at FROM operator_feed f JOIN organisation o"
                " ON o.id = f.organisation_id WHERE o.code = :code"), {"code": code}).first()
        if row is None:
            raise NotFound(f"no feed for {code!r}", field="code")
        return {"applied": row.applied_total, "ignored": row.ignored_total, "rejected": row.rejected_total,
                "failures": row.failures, "last_error": row.last_error,
                "next_poll_at": from_db(row.next_poll_at), "last_polled_at": from_db(row.last_polled_at)}

    def poll_due(self, now: datetime) -> list[PollResult]:
        return [self.poll(feed, now) for feed in self.feeds() if feed.next_poll_at <= now]

    def poll(self, feed: Feed, now: datetime) -> PollResult:
        """Poll one feed. Whatever the operator's server sends, the outcome is recorded with the feed
        (a failure backs off) and the poller goes on to the next feed."""
        try:
            status = self._fetch(station_status_url(self._fetch(feed.url), feed.url))
            ttl = status.get("ttl")
            stations = (status.get("data") or {}).get("stations") if isinstance(status.get("data"), dict) else None
            if not isinstance(stations, list) or isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
                raise FeedError("station_status.json needs data.stations (a list) and ttl (whole seconds)")
            reports, rejected = self._reports(feed.code, stations)
            outcomes = LiveStatuses(self._store).apply(feed.organisation_id, reports, now)
        except Exception as exc:  # a FeedError, or anything a hostile or broken feed can provoke
            if not isinstance(exc, FeedError):
                log.exception("feed %s: unexpected error", feed.code)
            error = str(exc) if isinstance(exc, FeedError) else f"{type(exc).__name__} while reading the feed"
            failures = feed.failures + 1
            later = now + backoff(failures)
            log.warning("feed %s failed (%d in a row), next try %s: %s", feed.code, failures, later.isoformat(),
                        error)
            self._record(feed, now, later, failures, error[:500], 0, 0, 0)
            return PollResult(feed.code, False, error=error, next_poll_at=later)
        refused = [o for o in outcomes if o.result in ("invalid", "unknown_station")]
        for o in refused[:LOGGED_REJECTIONS]:
            log.warning("feed %s: station %s rejected (%s): %s", feed.code, o.source_id, o.result, o.reason)
        if len(refused) > LOGGED_REJECTIONS:
            log.warning("feed %s: %d more stations rejected", feed.code, len(refused) - LOGGED_REJECTIONS)
        applied = sum(o.result == "applied" for o in outcomes)
        ignored = sum(o.result == "ignored_older" for o in outcomes)
        rejected += len(outcomes) - applied - ignored
        later = now + timedelta(seconds=min(max(ttl, MIN_POLL_S), MAX_POLL_S))
        self._record(feed, now, later, 0, None, applied, ignored, rejected)
        log.info("feed %s: %d applied, %d ignored (not newer), %d rejected; next poll %s", feed.code, applied,
                 ignored, rejected, later.isoformat())
        return PollResult(feed.code, True, applied, ignored, rejected, next_poll_at=later)

    def _reports(self, code: str, stations: list) -> tuple[list[LiveReport], int]:
        from app.api.payloads import LiveBatchItem  # the one declaration of a report's fields

        reports, rejected = [], 0
        for record in stations:
            item = gbfs_item(record)
            try:
                parsed = LiveBatchItem.model_validate_json(json.dumps(item))
                reports.append(parsed.report(parsed.station_id))
            except (ValidationError, ValueError) as exc:
                rejected += 1
                if rejected > LOGGED_REJECTIONS:
                    continue  # counted with the feed; the first few say why
                problem = exc.errors(include_url=False)[0] if isinstance(exc, ValidationError) else None
                log.warning("feed %s: station %r rejected: %s", code, str(item.get("station_id"))[:64],
                            f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}" if problem else exc)
        return reports, rejected

    def _record(self, feed: Feed, now, later, failures, error, applied, ignored, rejected) -> None:
        with self._store.transaction() as conn:
            dialect = conn.dialect.name
            conn.execute(text(
                "UPDATE operator_feed SET last_polled_at = :now, next_poll_at = :later, failures = :failures,"
                " last_error = :error, applied_total = applied_total + :applied,"
                " ignored_total = ignored_total + :ignored, rejected_total = rejected_total + :rejected"
                " WHERE organisation_id = :org"),
                {"now": to_db(now, dialect), "later": to_db(later, dialect), "failures": failures, "error": error,
                 "applied": applied, "ignored": ignored, "rejected": rejected, "org": feed.organisation_id})
