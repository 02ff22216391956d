"""Small builders shared by the tests."""
from sqlalchemy import create_engine, make_url, text

from app.stations.backends import drop_all_tables
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


def own_postgis_database(apps, suffix: str) -> str:
    """The URL of a database of its own beside the PostGIS test database ("<name>_<suffix>"), made if
    missing and emptied: for a server or listener that commits, which the other tests (each in a
    rolled-back transaction on an empty store) must never see."""
    base = make_url(apps["postgis"].config["SQLALCHEMY_DATABASE_URI"])
    url = base.set(database=f"{base.database}_{suffix}")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                            {"name": url.database}).first() is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')  # a name cannot be bound
    finally:
        admin.dispose()
    engine = create_engine(url)
    try:
        drop_all_tables(engine)
    finally:
        engine.dispose()
    return url.render_as_string(hide_password=False)
