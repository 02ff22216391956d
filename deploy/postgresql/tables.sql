-- Per-table storage settings for Yizhan's write-heavy tables (PostgreSQL only). Each statement
-- changes only the table's settings (no rewrite, a brief SHARE UPDATE EXCLUSIVE lock), so it is
-- safe while the service runs; run it once after `flask db upgrade`, and again after a release
-- that adds a table here:
--   sudo -u postgres psql -d yizhan -v ON_ERROR_STOP=1 -f deploy/postgresql/tables.sql
-- The default autovacuum triggers after 20 % of a table's rows changed; on a million stations
-- that is 200,000 dead rows. These tables change much faster than they grow.

-- station: operators' live status (every cabinet every 30 s) and rating counters UPDATE rows in
-- place. None of those columns is indexed, so with free room on the page the new row version is a
-- HOT update: no new entry in the GiST, trigram and btree indexes. fillfactor 85 leaves that room
-- (applies to pages written from now on; VACUUM FULL or the next import fills the rest).
ALTER TABLE station SET (fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);

-- station_cleaning: one row per station with a sensor, updated by every counted visitor.
ALTER TABLE station_cleaning SET (fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);

-- sensor_reading: inserted all day, never updated. Vacuum after inserts too (not only after
-- updates), so its visibility map stays current (index-only scans) and its statistics fresh.
ALTER TABLE sensor_reading SET (autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02);

-- work_order: updated at each transition and by `ops tick` (breaches, escalations); its event log
-- and the reports are appended to (the purge later updates reports).
ALTER TABLE work_order SET (fillfactor = 90,
    autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE work_order_event SET (autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE report SET (autovacuum_vacuum_scale_factor = 0.05);

-- outbox: a queue (rows claimed, updated, delivered) read with FOR UPDATE SKIP LOCKED each minute.
ALTER TABLE outbox SET (fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 500);

-- network: one row per travel mode whose graph is already compressed by the app (numpy
-- savez_compressed, app/network/graph.py): stored out of line as it is, never run through
-- PostgreSQL's own compression again. Applies to graphs written from now on (the next import).
ALTER TABLE network ALTER COLUMN graph SET STORAGE EXTERNAL;
