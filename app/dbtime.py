"""Times in the database, read and written in one way: UTC always; timestamptz on PostGIS,
fixed-width text on SQLite.

SQLite has no time type; 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC, no zone) sorts and compares as text,
so every ops time on SQLite is written in exactly that form (migration 0006 uses it for defaults).
"""
from __future__ import annotations

from datetime import datetime, timezone

_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_db(value: datetime | None, dialect: str):
    """A bound parameter for an aware datetime (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time {value.isoformat()} has no time zone")
    utc = value.astimezone(timezone.utc)
    return utc if dialect == "postgresql" else utc.replace(tzinfo=None).strftime(_SQLITE_FORMAT)


def from_db(value) -> datetime | None:
    """An aware UTC datetime from a column value of either store."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
