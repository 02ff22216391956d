"""Small builders shared by the tests."""
from app.stations.model import StationInput
from app.stations.vocabulary import amenity_mask


def station(source_id, lat, lng, kind="toilet", *, yes=(), no=(), hours=None, status="active",
            source="test", name=None, timezone="Asia/Shanghai"):
    core = {"toilet": ("toilet",), "water_point": ("drinking_water",), "battery_swap": ("battery_swap",),
            "charging": ("ebike_charging",)}.get(kind, ())
    return StationInput(
        source=source, source_id=str(source_id), name=name or f"站点 {source_id}", kind=kind,
        lat=lat, lng=lng, amenities_yes=amenity_mask(set(yes) | set(core)), amenities_no=amenity_mask(no),
        opening_hours=hours, status=status, timezone=timezone,
    )
