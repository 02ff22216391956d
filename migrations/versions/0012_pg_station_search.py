"""Search by name on PostgreSQL: the active stations' keys by map cell, as SQLite has had since
0011, read by an index-only scan.

A search around a point with a common pattern widens boxes and tests the key of every active
station inside. Through the GiST index each of those rows was a page of ``station`` of its own
(the rows lie in import order, not by place): 7,345 pages for 7,756 rows in an 8 km box at 1M.
``station_search`` holds each active station's cell, id, point and key (after a space); its
primary key (cell, id) carries the point and the key (``INCLUDE``), so the rows of neighbouring
cells are read from a few index pages (943 for the same box, 6x faster), with no visit to the
table once VACUUM has marked its pages all-visible (``analyze_search`` runs it after imports).
Kept in step with ``station`` by a trigger. The cell formula (0.01° rows of 36,000 cells) is
SQLite's, written out here; app.stations.store.search_cell must agree (tested).

Revision ID: 0012_pg_station_search
Revises: 0011_search_trigrams
Create Date: 2026-11-27
"""
from alembic import op

revision = "0012_pg_station_search"
down_revision = "0011_search_trigrams"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite's station_search came with 0011
    op.execute("CREATE TABLE station_search (cell bigint NOT NULL, id bigint NOT NULL, lat double precision NOT NULL,"
               " lng double precision NOT NULL, search_key text NOT NULL)")
    op.execute("INSERT INTO station_search SELECT trunc((lat + 90) * 100)::bigint * 36000"
               " + trunc((lng + 180) * 100)::bigint, id, lat, lng, ' ' || search_key"
               " FROM station WHERE status = 'active' ORDER BY 1, 2")
    op.execute("ALTER TABLE station_search ADD CONSTRAINT station_search_pkey PRIMARY KEY (cell, id)"
               " INCLUDE (lat, lng, search_key)")
    op.execute(
        "CREATE FUNCTION station_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF TG_OP IN ('UPDATE', 'DELETE') THEN"
        "  DELETE FROM station_search WHERE cell = trunc((OLD.lat + 90) * 100)::bigint * 36000"
        "   + trunc((OLD.lng + 180) * 100)::bigint AND id = OLD.id;"
        " END IF;"
        " IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status = 'active' THEN"
        "  INSERT INTO station_search VALUES (trunc((NEW.lat + 90) * 100)::bigint * 36000"
        "   + trunc((NEW.lng + 180) * 100)::bigint, NEW.id, NEW.lat, NEW.lng, ' ' || NEW.search_key);"
        " END IF;"
        " RETURN NULL; END $$")
    op.execute("CREATE TRIGGER station_search_insert AFTER INSERT ON station FOR EACH ROW"
               " WHEN (NEW.status = 'active') EXECUTE FUNCTION station_search_sync()")
    op.execute("CREATE TRIGGER station_search_update AFTER UPDATE OF lat, lng, status, search_key ON station"
               " FOR EACH ROW EXECUTE FUNCTION station_search_sync()")
    op.execute("CREATE TRIGGER station_search_delete AFTER DELETE ON station FOR EACH ROW"
               " EXECUTE FUNCTION station_search_sync()")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in ("DROP TRIGGER station_search_delete ON station", "DROP TRIGGER station_search_update ON station",
                      "DROP TRIGGER station_search_insert ON station", "DROP FUNCTION station_search_sync()",
                      "DROP TABLE station_search"):
        op.execute(statement)
