"""Yizhan's stations as a GBFS v2.3 feed (plain dicts; no Flask here).

GBFS is written for bike share; a station maps onto it as a place you can go to, and a
battery-swap cabinet's charged batteries are its "bikes available". Only active stations
are published (closed and removed ones are not on the street for a map app).
"""
from __future__ import annotations

from datetime import datetime

VERSION = "2.3"
TTL_S = 60
SYSTEM_ID = "yizhan"
# Discovery lists the feeds once per language (GBFS keys them by language code); the first is
# the default. Station names are as on the door (Chinese) in both.
LANGUAGES = ("zh", "en")
SYSTEM_NAMES = {"zh": "驿站", "en": "Yizhan"}
FEEDS = ("system_information", "station_information", "station_status")


def envelope(data: dict, now: datetime) -> dict:
    """The fields every GBFS file carries. ``last_updated`` is the start of the current ttl
    window, so the body (and its ETag) stays the same within one unless the data changed."""
    stamp = int(now.timestamp())
    return {"last_updated": stamp - stamp % TTL_S, "ttl": TTL_S, "version": VERSION, "data": data}


def discovery(url_for_feed) -> dict:
    """gbfs.json's data: ``url_for_feed(name, lang)`` is the absolute URL of ``name``.json in
    ``lang`` (only system_information has words in it: its name)."""
    return {lang: {"feeds": [{"name": name, "url": url_for_feed(name, lang)} for name in FEEDS]}
            for lang in LANGUAGES}


def system_information(lang: str, timezone: str) -> dict:
    return {"system_id": SYSTEM_ID, "language": lang, "name": SYSTEM_NAMES[lang], "timezone": timezone}


def station_information(batches) -> dict:
    """``batches``: iterable of lists of active Stations (the store's ``active_batches``)."""
    stations = []
    for batch in batches:
        for st in batch:
            item = {"station_id": str(st.id), "name": st.name, "lat": st.lat, "lon": st.lng}
            if st.address:
                item["address"] = st.address
            stations.append(item)
    return {"stations": stations}


def temporarily_closed(station, now: datetime) -> bool:
    """Staff closed it for now (the same test as the finder's open state)."""
    return station.closure_reason is not None and (station.closure_until is None or now < station.closure_until)


def status_of(station, now: datetime) -> dict:
    """One station_status entry.

    A cabinet whose operator reports its status (app.stations.live) is published as reported:
    num_bikes_available and num_docks_available are its charged batteries and free docks,
    is_installed and is_renting its own flags (and is_renting false while staff have closed it),
    and last_reported the cabinet's own report time. That time is never refreshed here, so a
    status the operator has stopped sending reads as old as it is: GBFS has no "unknown", and
    consumers judge freshness by last_reported (the finder's own answers show such a status as
    stale, without counts). Any other station: is_installed (only active ones are published);
    is_renting and is_returning unless staff closed it for now; num_bikes_available the imported
    battery count, else 0; last_reported when its data last changed.
    """
    installed = station.status == "active"
    serving = installed and not temporarily_closed(station, now)
    if station.live_reported_at is not None:
        renting = serving and bool(station.live_installed) and bool(station.live_renting)
        entry = {
            "station_id": str(station.id),
            "num_bikes_available": station.live_batteries or 0,
            "is_installed": installed and bool(station.live_installed),
            "is_renting": renting,
            "is_returning": renting,
            "last_reported": int(station.live_reported_at.timestamp()),
        }
        if station.live_docks is not None:
            entry["num_docks_available"] = station.live_docks
        return entry
    reported = station.updated_at or station.created_at
    return {
        "station_id": str(station.id),
        "num_bikes_available": station.batteries_available or 0,
        "is_installed": installed,
        "is_renting": serving,
        "is_returning": serving,
        "last_reported": int(reported.timestamp()) if reported else int(now.timestamp()),
    }


def station_status(batches, now: datetime) -> dict:
    return {"stations": [status_of(st, now) for batch in batches for st in batch]}
