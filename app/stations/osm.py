"""OpenStreetMap tags -> Yizhan station fields.

Used by the GeoJSON importer (OSM-tagged features) and the network importer.
Returns None for features that are not stations people can use.
"""
from __future__ import annotations

from app.stations.vocabulary import KINDS

_YES = {"yes", "designated"}
_PUBLIC_ACCESS = {None, "yes", "public", "permissive"}

# Every tag station_fields reads. OSM tag values are text; a GeoJSON file may hold anything.
TAGS_READ = (
    "amenity", "access", "bicycle", "name:zh", "name", "wheelchair", "changing_table", "diaper",
    "drinking_water", "fee", "opening_hours", "operator", "addr:street", "addr:housenumber",
)


class TagNotText(ValueError):
    """A tag station_fields reads holds something other than text (only possible in GeoJSON)."""

    def __init__(self, key: str, value: object):
        super().__init__(f"tag {key} is not text")
        self.key, self.value = key, value


def _three_state(value: str | None) -> str | None:
    if value in _YES:
        return "yes"
    if value == "no":
        return "no"
    return None


def station_fields(tags: dict) -> dict | None:
    """Our record fields (kind, name, amenities, …) for an OSM object's tags, or None.

    ``amenities`` is a dict of amenity name -> "yes" | "no" (unknown ones left out).
    Raises TagNotText if a tag it reads is not a string.
    """
    for key in TAGS_READ:
        if tags.get(key) is not None and not isinstance(tags[key], str):
            raise TagNotText(key, tags[key])
    amenity = tags.get("amenity")
    amenities: dict[str, str | None] = {}
    if amenity == "toilets":
        kind = "toilet"
        amenities["accessible_toilet"] = _three_state(tags.get("wheelchair"))
        amenities["baby_change"] = _three_state(tags.get("changing_table") or tags.get("diaper"))
        amenities["drinking_water"] = _three_state(tags.get("drinking_water"))
    elif amenity == "drinking_water":
        kind = "water_point"
    elif amenity == "charging_station" and tags.get("bicycle") in _YES:
        kind = "charging"
    elif amenity == "shelter":
        kind = "rest_station"
        amenities["rest_area"] = "yes"
    else:
        return None

    access = tags.get("access")
    if access not in _PUBLIC_ACCESS and access != "customers":
        return None  # private / no: nobody can walk in
    return {
        "kind": kind,
        "name": tags.get("name:zh") or tags.get("name") or KINDS[kind]["zh-CN"],
        "amenities": {name: state for name, state in amenities.items() if state},
        "opening_hours": tags.get("opening_hours"),
        "operator": tags.get("operator"),
        "address": _address(tags),
        "access": "customers" if access == "customers" else "public",
        "fee": _three_state(tags.get("fee")),
    }


def _address(tags: dict) -> str | None:
    street = tags.get("addr:street")
    if not street:
        return None
    number = tags.get("addr:housenumber")
    return f"{street} {number}" if number else street
