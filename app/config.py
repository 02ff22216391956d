"""Configuration, read from the environment when the app is created."""
from __future__ import annotations

import os

from app.stations.model import DEFAULT_TIMEZONE


def normalise_database_url(url: str) -> str:
    """Accept plain ``postgresql://`` (or Heroku-style ``postgres://``) URLs; we use psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise ValueError(f"DATABASE_URL must be sqlite:///path or postgresql://…, got {url!r}")


def from_environment(instance_path: str) -> dict:
    """Settings from environment variables, with the embedded SQLite file as default store."""
    default_db = "sqlite:///" + os.path.join(instance_path, "yizhan.sqlite3")
    return {
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(os.environ.get("DATABASE_URL") or default_db),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "YIZHAN_TIMEZONE": os.environ.get("YIZHAN_TIMEZONE", DEFAULT_TIMEZONE),
    }
