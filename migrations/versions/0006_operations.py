"""Operations: organisations, staff, tokens, problem reports and work orders with their
append-only event log, photos, inspections, station status and the notification outbox.

Times are UTC: timestamptz on PostGIS, fixed-width 'YYYY-MM-DD HH:MM:SS.ffffff' text on SQLite
(so they sort and compare as text). Event logs are append-only, enforced by triggers on both
stores, not only by the code that writes them.

Revision ID: 0006_operations
Revises: 0005_station_signature
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_operations"
down_revision = "0005_station_signature"
branch_labels = None
depends_on = None

ROLES = ("admin", "org_manager", "station_manager", "worker")
STATES = ("new", "confirmed", "assigned", "in_progress", "reopened", "fixed", "closed")
OPEN_STATES = ("new", "confirmed", "assigned", "in_progress", "reopened")
APPEND_ONLY = ("work_order_event", "station_status_event")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade():
    dialect = op.get_bind().dialect.name
    pg = dialect == "postgresql"
    stamp = sa.DateTime(timezone=True) if pg else sa.Text()
    now = sa.text("now()") if pg else sa.text("(strftime('%Y-%m-%d %H:%M:%f000', 'now'))")
    key = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    autoinc = {} if pg else {"sqlite_autoincrement": True}

    def ref(table: str, **kw):
        return sa.ForeignKey(f"{table}.id", **kw)

    # Finder-facing status lives on the station row (read by every search without a join).
    with op.batch_alter_table("station") as batch:
        batch.add_column(sa.Column("closure_reason", sa.Text()))
        batch.add_column(sa.Column("closure_until", stamp))
        batch.add_column(sa.Column("out_of_order", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_inspected_at", stamp))

    op.create_table(
        "organisation",
        sa.Column("id", key, primary_key=True),
        sa.Column("code", sa.Text(), nullable=False, unique=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False, server_default="Asia/Shanghai"),
        sa.Column("categories", sa.Text()),  # JSON list (app.ops.categories); NULL: the defaults
        sa.Column("webhook_url", sa.Text()),
        sa.Column("webhook_format", sa.Text(), nullable=False, server_default="json"),
        sa.Column("created_at", stamp, nullable=False, server_default=now),
        sa.CheckConstraint("webhook_format IN ('wecom', 'json')", name="ck_organisation_webhook_format"),
        **autoinc,
    )
    op.create_table(
        "staff_user",
        sa.Column("id", key, primary_key=True),
        sa.Column("email", sa.Text(), nullable=False, unique=True),  # stored lower-case
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("organisation_id", key, ref("organisation")),
        sa.Column("webhook_url", sa.Text()),  # own notifications; NULL: the organisation's
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", stamp, nullable=False, server_default=now),
        sa.CheckConstraint(_in("role", ROLES), name="ck_staff_user_role"),
        sa.CheckConstraint("role = 'admin' OR organisation_id IS NOT NULL", name="ck_staff_user_org"),
        **autoinc,
    )
    op.create_table(
        "api_token",
        sa.Column("id", key, primary_key=True),
        sa.Column("user_id", key, ref("staff_user"), nullable=False, index=True),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),  # SHA-256 hex of the token
        sa.Column("created_at", stamp, nullable=False, server_default=now),
        sa.Column("expires_at", stamp),
        sa.Column("revoked_at", stamp),
        sa.Column("last_used_at", stamp),
        **autoinc,
    )
    op.create_table(
        "open311_key",
        sa.Column("id", key, primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("created_at", stamp, nullable=False, server_default=now),
        sa.Column("revoked_at", stamp),
        **autoinc,
    )
    op.create_table(
        "station_ops",
        sa.Column("station_id", key, ref("station", ondelete="CASCADE"), primary_key=True),
        sa.Column("organisation_id", key, ref("organisation"), nullable=False, index=True),
        sa.Column("manager_id", key, ref("staff_user"), index=True),
    )
    op.create_table(
        "station_status_event",
        sa.Column("id", key, primary_key=True),
        sa.Column("station_id", key, ref("station", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("at", stamp, nullable=False),
        sa.Column("actor_id", key, ref("staff_user")),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("change", sa.Text(), nullable=False),  # 'status' or 'amenity'
        sa.Column("subject", sa.Text(), nullable=False),  # the status, or the amenity's name
        sa.Column("value", sa.Text(), nullable=False),  # open|temporarily_closed, or in_order|out_of_order
        sa.Column("reason", sa.Text()),
        sa.Column("until", stamp),
        sa.CheckConstraint("change IN ('status', 'amenity')", name="ck_station_status_event_change"),
        **autoinc,
    )
    op.create_table(
        "work_order",
        sa.Column("id", key, primary_key=True),
        sa.Column("organisation_id", key, ref("organisation"), index=True),
        sa.Column("station_id", key, ref("station")),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        # A cache of the event log's last state, written in the same transaction as the event.
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("close_reason", sa.Text()),
        sa.Column("assignee_id", key, ref("staff_user"), index=True),
        sa.Column("lat", sa.Float(precision=53), nullable=False),
        sa.Column("lng", sa.Float(precision=53), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("reports", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("updated_at", stamp, nullable=False),
        sa.Column("response_due_at", stamp, nullable=False),
        sa.Column("resolution_due_at", stamp, nullable=False),
        sa.Column("due_estimated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("responded_at", stamp),
        sa.Column("resolved_at", stamp),
        sa.Column("response_breached_at", stamp),
        sa.Column("resolution_breached_at", stamp),
        sa.Column("track_nonce", sa.Text(), nullable=False),
        sa.CheckConstraint(_in("state", STATES), name="ck_work_order_state"),
        sa.CheckConstraint("lat BETWEEN -90 AND 90 AND lng BETWEEN -180 AND 180", name="ck_work_order_coords"),
        sa.CheckConstraint("reports >= 1", name="ck_work_order_reports"),
        **autoinc,
    )
    # "Me too": at most one open work order per station and problem; a second report joins it.
    op.create_index(
        "uq_work_order_open_problem", "work_order", ["station_id", "category"], unique=True,
        postgresql_where=sa.text(_in("state", OPEN_STATES)), sqlite_where=sa.text(_in("state", OPEN_STATES)),
    )
    op.create_index("ix_work_order_station", "work_order", ["station_id", "created_at"])
    op.create_table(
        "work_order_event",
        sa.Column("id", key, primary_key=True),
        sa.Column("work_order_id", key, ref("work_order"), nullable=False, index=True),
        sa.Column("at", stamp, nullable=False),
        sa.Column("actor_id", key, ref("staff_user")),
        sa.Column("actor", sa.Text(), nullable=False),  # a staff email, 'reporter' or 'system'
        sa.Column("from_state", sa.Text()),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text()),
        sa.Column("assignee_id", key, ref("staff_user")),
        **autoinc,
    )
    op.create_table(
        "report",
        sa.Column("id", key, primary_key=True),
        sa.Column("work_order_id", key, ref("work_order"), nullable=False, index=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),  # web | open311 | inspection
        sa.Column("open311_key_id", key, ref("open311_key")),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("lat", sa.Float(precision=53), nullable=False),
        sa.Column("lng", sa.Float(precision=53), nullable=False),
        sa.Column("media_url", sa.Text()),  # given by an Open311 client; never fetched
        # Personal data: shown only to the responsible organisation, erased by `ops purge`.
        sa.Column("phone", sa.Text()),
        sa.Column("email", sa.Text()),
        sa.Column("device_id", sa.Text()),
        sa.Column("personal_purged_at", stamp),
        **autoinc,
    )
    op.create_table(
        "inspection",
        sa.Column("id", key, primary_key=True),
        sa.Column("station_id", key, ref("station"), nullable=False),
        sa.Column("inspector_id", key, ref("staff_user"), nullable=False),
        sa.Column("at", stamp, nullable=False),
        sa.Column("lat", sa.Float(precision=53)),
        sa.Column("lng", sa.Float(precision=53)),
        sa.Column("distance_m", sa.Float(precision=53)),
        sa.Column("far", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        **autoinc,
    )
    op.create_index("ix_inspection_station_at", "inspection", ["station_id", "at"])
    op.create_table(
        "inspection_item",
        sa.Column("id", key, primary_key=True),
        sa.Column("inspection_id", key, ref("inspection"), nullable=False, index=True),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("work_order_id", key, ref("work_order")),
        sa.UniqueConstraint("inspection_id", "item", name="uq_inspection_item"),
        **autoinc,
    )
    op.create_table(
        "attachment",
        sa.Column("id", key, primary_key=True),
        sa.Column("sha256", sa.Text(), nullable=False),  # the file's name in the upload store
        sa.Column("mime", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("work_order_id", key, ref("work_order"), index=True),
        sa.Column("report_id", key, ref("report")),
        sa.Column("event_id", key, ref("work_order_event")),
        sa.Column("inspection_item_id", key, ref("inspection_item")),
        # Reporters' photos are for staff; a fix's photos on a public event are public.
        sa.Column("public", sa.Boolean(), nullable=False, server_default=sa.false()),
        **autoinc,
    )
    op.create_table(
        "outbox",
        sa.Column("id", key, primary_key=True),
        sa.Column("created_at", stamp, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),  # assigned | breach | ...
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),  # JSON
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", stamp, nullable=False),
        sa.Column("delivered_at", stamp),
        sa.Column("last_error", sa.Text()),
        sa.CheckConstraint("format IN ('wecom', 'json')", name="ck_outbox_format"),
        **autoinc,
    )
    op.create_index("ix_outbox_pending", "outbox", ["next_attempt_at"],
                    postgresql_where=sa.text("delivered_at IS NULL"), sqlite_where=sa.text("delivered_at IS NULL"))

    for table in APPEND_ONLY:
        if pg:
            op.execute(
                f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$"
                f" BEGIN RAISE EXCEPTION '{table} is append-only'; END $$"
            )
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}"
                       f" FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")
        else:
            for event in ("UPDATE", "DELETE"):
                op.execute(f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table}"
                           f" BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


def downgrade():
    pg = op.get_bind().dialect.name == "postgresql"
    for table in APPEND_ONLY:
        if pg:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
        else:
            for event in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{event}")
    for table in ("outbox", "attachment", "inspection_item", "inspection", "report", "work_order_event",
                  "work_order", "station_status_event", "station_ops", "open311_key", "api_token",
                  "staff_user", "organisation"):
        op.drop_table(table)
    with op.batch_alter_table("station") as batch:
        for column in ("last_inspected_at", "out_of_order", "closure_until", "closure_reason"):
            batch.drop_column(column)
