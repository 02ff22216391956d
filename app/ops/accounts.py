"""Organisations, staff users, passwords, API tokens, Open311 keys and who runs which station.

Secrets are never stored: passwords as scrypt hashes (werkzeug), bearer tokens and Open311 keys
as the SHA-256 hex of the value, which is shown once, when it is made. A token is random enough
(256 bits) that a plain hash is as good as a slow one, and it lets a request be checked with one
indexed lookup.

Who may be what is declared once, in ``ROLES`` (the migration's check constraint mirrors it):
an admin belongs to no organisation, everyone else to exactly one.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import bindparam, text
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.ops.categories import (
    DEFAULT_CATEGORIES, Category, categories_from_dicts, category_to_dict, validate_categories,
)
from app.dbtime import from_db, to_db, utcnow
from app.ops.errors import Conflict, Invalid, NotFound
from app.ops.outbox import FORMATS as WEBHOOK_FORMATS, validate_webhook_url
from app.stations.store import StationStore
from app.stations.vocabulary import BRANDED_KINDS

ROLES = ("admin", "org_manager", "station_manager", "worker")
ORG_ROLES = tuple(role for role in ROLES if role != "admin")  # the roles that need an organisation
MANAGER_ROLES = ("station_manager", "org_manager")  # who may be named a station's manager
DEFAULT_TIMEZONE = "Asia/Shanghai"

TOKEN_PREFIX = "yzt_"  # staff bearer tokens: recognisable in a leaked log or a secret scanner
OPEN311_KEY_PREFIX = "yzk_"
_SECRET_BYTES = 32
_SECRET_MAX_LENGTH = 100  # longer "tokens" are rejected before any hashing or lookup

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024  # hashing cost must not be the caller's to choose
PASSWORD_METHOD = "scrypt"

EMAIL_MAX_LENGTH = 254  # RFC 5321's path limit
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
ORG_CODE_MAX_LENGTH = 40
ORG_CODE_PATTERN = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
NAME_MAX_LENGTH = 200

# A token's last use is written at most this often: a busy client must not turn every read
# into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_ID_BATCH = 500  # source ids per IN (...) query: well under every driver's parameter limit


@dataclass(frozen=True)
class Organisation:
    id: int
    code: str
    name: str
    timezone: str
    categories: tuple[Category, ...]
    webhook_url: str | None
    webhook_format: str  # one of WEBHOOK_FORMATS


@dataclass(frozen=True)
class Principal:
    """Who is calling: a logged-in user or a token's user (always an active one)."""

    id: int
    email: str
    role: str
    organisation_id: int | None
    webhook_url: str | None  # the user's own; None: notifications go to the organisation's
    # A fingerprint of the stored password hash: a login session remembers it, so a new password
    # ends every session made with the old one.
    credential: str = field(default="", repr=False, compare=False)


def normalise_email(email: Any) -> str:
    """The stored form of an address (stripped, lower-case); ``Invalid`` if it has no address's shape."""
    value = email.strip().lower() if isinstance(email, str) else ""
    if not value or len(value) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(value) or not value.isprintable():
        raise Invalid(f"{email!r} is not an e-mail address (name@host.domain, at most "
                      f"{EMAIL_MAX_LENGTH} characters)", field="email")
    return value


def _secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(_SECRET_BYTES)


def _looks_like(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix) and len(value) <= _SECRET_MAX_LENGTH


@cache
def _dummy_hash() -> str:
    """A hash to check unknown e-mails against, so they cost the same time as known ones."""
    return generate_password_hash(secrets.token_urlsafe(16), method=PASSWORD_METHOD)


def _check_password(password: Any) -> str:
    if not isinstance(password, str) or not password:
        raise Invalid("a password is required", field="password")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise Invalid(f"the password must have at least {PASSWORD_MIN_LENGTH} characters", field="password")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise Invalid(f"the password must have at most {PASSWORD_MAX_LENGTH} characters", field="password")
    return password


def _check_org_code(code: Any) -> str:
    if not isinstance(code, str) or len(code) > ORG_CODE_MAX_LENGTH or not ORG_CODE_PATTERN.fullmatch(code):
        raise Invalid(f"organisation code {code!r} must be lower-case ASCII letters and digits, words joined "
                      f"by single '-' or '_', at most {ORG_CODE_MAX_LENGTH} characters", field="code")
    return code


def _check_name(name: Any) -> str:
    value = name.strip() if isinstance(name, str) else ""
    if not value or len(value) > NAME_MAX_LENGTH:
        raise Invalid(f"a name of 1 to {NAME_MAX_LENGTH} characters is required", field="name")
    return value


def _check_timezone(name: Any) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise Invalid(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)",
                      field="timezone") from None
    return name


def _check_webhook_url(url: Any) -> str | None:
    """None when unset; otherwise the outbox's own rule for what can be a webhook."""
    if url is None or url == "":
        return None
    return validate_webhook_url(url)


def _check_webhook_format(fmt: Any) -> str:
    if fmt not in WEBHOOK_FORMATS:
        raise Invalid(f"webhook format {fmt!r} must be one of {', '.join(WEBHOOK_FORMATS)}",
                      field="webhook_format")
    return fmt


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise Invalid(f"{field} must carry a time zone", field=field)
    return value


_ORG_COLUMNS = "id, code, name, timezone, categories, webhook_url, webhook_format"
_USER_COLUMNS = "u.id, u.email, u.role, u.organisation_id, u.webhook_url, u.password_hash"


def _organisation(row) -> Organisation:
    categories = DEFAULT_CATEGORIES if row.categories is None else categories_from_dicts(json.loads(row.categories))
    return Organisation(row.id, row.code, row.name, row.timezone, categories, row.webhook_url, row.webhook_format)


def _principal(row) -> Principal:
    credential = hashlib.sha256(row.password_hash.encode()).hexdigest()[:32]
    return Principal(row.id, row.email, row.role, row.organisation_id, row.webhook_url, credential)


class Accounts:
    """Accounts on a StationStore's database (its transactions, so tests can roll them back)."""

    def __init__(self, stations: StationStore):
        self._stations = stations

    # -- organisations ---------------------------------------------------------

    def create_organisation(self, code: str, name: str, timezone: str = DEFAULT_TIMEZONE,
                            webhook_url: str | None = None, webhook_format: str = "json") -> Organisation:
        values = {
            "code": _check_org_code(code), "name": _check_name(name), "timezone": _check_timezone(timezone),
            "webhook_url": _check_webhook_url(webhook_url), "webhook_format": _check_webhook_format(webhook_format),
        }
        with self._stations.transaction() as conn:
            if self._org_row(conn, code) is not None:
                raise Conflict(f"organisation {code!r} already exists", field="code")
            try:
                conn.execute(text(
                    "INSERT INTO organisation (code, name, timezone, webhook_url, webhook_format)"
                    " VALUES (:code, :name, :timezone, :webhook_url, :webhook_format)"
                ), values)
            except IntegrityError:  # created meanwhile by someone else
                raise Conflict(f"organisation {code!r} already exists", field="code") from None
            return _organisation(self._org_row(conn, code))

    def organisation(self, organisation_id: int) -> Organisation | None:
        with self._stations.reading() as conn:
            row = conn.execute(text(f"SELECT {_ORG_COLUMNS} FROM organisation WHERE id = :id"),
                               {"id": organisation_id}).first()
        return _organisation(row) if row else None

    def brands(self) -> list[tuple[str, str]]:
        """(code, name) of the organisations running at least one active battery-swap or charging
        station, by code: the brands a courier may choose from (the finder's ``org`` filter)."""
        kinds = sorted(BRANDED_KINDS)
        with self._stations.reading() as conn:
            rows = conn.execute(text(
                "SELECT o.code, o.name FROM organisation o WHERE EXISTS (SELECT 1 FROM station_ops so"
                " JOIN station s ON s.id = so.station_id WHERE so.organisation_id = o.id"
                " AND s.status = 'active' AND s.kind IN :kinds) ORDER BY o.code"
            ).bindparams(bindparam("kinds", expanding=True)), {"kinds": kinds})
            return [(r.code, r.name) for r in rows]

    def organisation_by_code(self, code: str) -> Organisation | None:
        with self._stations.reading() as conn:
            row = self._org_row(conn, code)
        return _organisation(row) if row else None

    def set_categories(self, org_code: str, dicts: Sequence[Mapping[str, Any]] | None) -> Organisation:
        """Replace an organisation's problem categories (None: back to the defaults)."""
        stored = None
        if dicts is not None:
            problems = validate_categories(dicts)
            if problems:
                raise Invalid("; ".join(problems), field="categories")
            # Stored in the normal form (trimmed labels), the one category_to_dict writes.
            stored = json.dumps([category_to_dict(c) for c in categories_from_dicts(dicts)], ensure_ascii=False)
        with self._stations.transaction() as conn:
            self._require_org(conn, org_code)
            conn.execute(text("UPDATE organisation SET categories = :categories WHERE code = :code"),
                         {"categories": stored, "code": org_code})
            return _organisation(self._org_row(conn, org_code))

    @staticmethod
    def _org_row(conn, code):
        return conn.execute(text(f"SELECT {_ORG_COLUMNS} FROM organisation WHERE code = :code"),
                            {"code": code}).first()

    def _require_org(self, conn, code):
        row = self._org_row(conn, code)
        if row is None:
            raise NotFound(f"no organisation with code {code!r}", field="org")
        return row

    # -- staff users -------------------------------------------------------------

    def create_user(self, email: str, password: str, role: str, org_code: str | None = None,
                    webhook_url: str | None = None) -> Principal:
        email = normalise_email(email)
        if role not in ROLES:
            raise Invalid(f"role {role!r} must be one of {', '.join(ROLES)}", field="role")
        if role == "admin" and org_code:
            raise Invalid("an admin belongs to no organisation: leave out the organisation", field="org")
        if role != "admin" and not org_code:
            raise Invalid(f"a {role} must belong to an organisation: give its code", field="org")
        password_hash = generate_password_hash(_check_password(password), method=PASSWORD_METHOD)
        webhook_url = _check_webhook_url(webhook_url)
        with self._stations.transaction() as conn:
            org_id = self._require_org(conn, org_code).id if org_code else None
            if self._user_row(conn, "u.email = :email", email=email, active_only=False) is not None:
                raise Conflict(f"a staff user {email} already exists", field="email")
            try:
                conn.execute(text(
                    "INSERT INTO staff_user (email, password_hash, role, organisation_id, webhook_url, active)"
                    " VALUES (:email, :hash, :role, :org, :webhook_url, :active)"
                ), {"email": email, "hash": password_hash, "role": role, "org": org_id,
                    "webhook_url": webhook_url, "active": True})
            except IntegrityError:
                raise Conflict(f"a staff user {email} already exists", field="email") from None
            return _principal(self._user_row(conn, "u.email = :email", email=email))

    def authenticate(self, email: str, password: str) -> Principal | None:
        """The active user with this e-mail and password, else None. Unknown, malformed and
        inactive accounts cost one password check too, so timing tells nothing."""
        if not isinstance(password, str) or len(password) > PASSWORD_MAX_LENGTH:
            password = ""
        try:
            address = normalise_email(email)
        except Invalid:
            address = None
        row = None
        if address is not None:
            with self._stations.reading() as conn:
                row = conn.execute(text(
                    f"SELECT {_USER_COLUMNS}, u.active FROM staff_user u WHERE u.email = :email"
                ), {"email": address}).first()
        if row is None:
            check_password_hash(_dummy_hash(), password)
            return None
        if not check_password_hash(row.password_hash, password) or not row.active:
            return None
        return _principal(row)

    def set_password(self, email: str, password: str) -> None:
        password_hash = generate_password_hash(_check_password(password), method=PASSWORD_METHOD)
        with self._stations.transaction() as conn:
            self._require_user(conn, email, active_only=False)
            conn.execute(text("UPDATE staff_user SET password_hash = :hash WHERE email = :email"),
                         {"hash": password_hash, "email": normalise_email(email)})

    def set_active(self, email: str, active: bool) -> None:
        """(De)activate a user: an inactive one cannot log in, and its sessions and tokens stop working."""
        with self._stations.transaction() as conn:
            self._require_user(conn, email, active_only=False)
            conn.execute(text("UPDATE staff_user SET active = :active WHERE email = :email"),
                         {"active": bool(active), "email": normalise_email(email)})

    def user(self, user_id: int) -> Principal | None:
        """The active user with this id (None for an unknown or inactive one)."""
        with self._stations.reading() as conn:
            row = self._user_row(conn, "u.id = :id", id=user_id)
        return _principal(row) if row else None

    def user_by_email(self, email: str) -> Principal | None:
        try:
            address = normalise_email(email)
        except Invalid:
            return None
        with self._stations.reading() as conn:
            row = self._user_row(conn, "u.email = :email", email=address)
        return _principal(row) if row else None

    def staff_of(self, organisation_id: int, roles: Iterable[str] | None = None) -> list[Principal]:
        """An organisation's active staff, by id; only ``roles`` if given."""
        wanted = tuple(roles) if roles is not None else ROLES
        unknown = sorted(set(wanted) - set(ROLES))
        if unknown:
            raise Invalid(f"unknown role(s) {', '.join(unknown)}", field="roles")
        if not wanted:
            return []
        with self._stations.reading() as conn:
            rows = conn.execute(text(
                f"SELECT {_USER_COLUMNS} FROM staff_user u"
                " WHERE u.organisation_id = :org AND u.active AND u.role IN :roles ORDER BY u.id"
            ).bindparams(bindparam("roles", expanding=True)), {"org": organisation_id, "roles": list(wanted)}).all()
        return [_principal(row) for row in rows]

    @staticmethod
    def _user_row(conn, condition: str, active_only: bool = True, **params):
        active = " AND u.active" if active_only else ""
        return conn.execute(text(f"SELECT {_USER_COLUMNS} FROM staff_user u WHERE {condition}{active}"),
                            params).first()

    def _require_user(self, conn, email: str, active_only: bool = True):
        row = self._user_row(conn, "u.email = :email", active_only=active_only, email=normalise_email(email))
        if row is None:
            raise NotFound(f"no {'active ' if active_only else ''}staff user {email.strip().lower()}",
                           field="email")
        return row

    # -- bearer tokens -------------------------------------------------------------

    def create_token(self, email: str, expires_at: datetime | None = None) -> str:
        """A new bearer token for an active user. The plain token is returned here, once, and never stored."""
        _aware(expires_at, "expires_at")
        token = _new_secret(TOKEN_PREFIX)
        with self._stations.transaction() as conn:
            user = self._require_user(conn, email)
            conn.execute(text(
                "INSERT INTO api_token (user_id, token_hash, expires_at) VALUES (:user, :hash, :expires)"
            ), {"user": user.id, "hash": _secret_hash(token), "expires": to_db(expires_at, conn.dialect.name)})
        return token

    def principal_for_token(self, token: str, now: datetime) -> Principal | None:
        """The active user a live token belongs to; None if unknown, revoked or expired."""
        if not _looks_like(token, TOKEN_PREFIX):
            return None
        _aware(now, "now")
        with self._stations.reading() as conn:
            row = conn.execute(text(
                f"SELECT {_USER_COLUMNS}, t.id AS token_id, t.last_used_at"
                " FROM api_token t JOIN staff_user u ON u.id = t.user_id"
                " WHERE t.token_hash = :hash AND t.revoked_at IS NULL"
                " AND (t.expires_at IS NULL OR t.expires_at > :now) AND u.active"
            ), {"hash": _secret_hash(token), "now": to_db(now, conn.dialect.name)}).first()
        if row is None:
            return None
        self._touch(row.token_id, row.last_used_at, now)
        return _principal(row)

    def _touch(self, token_id: int, last_used_at, now: datetime) -> None:
        last = from_db(last_used_at)
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        with self._stations.transaction() as conn:
            conn.execute(text("UPDATE api_token SET last_used_at = :now WHERE id = :id"),
                         {"now": to_db(now, conn.dialect.name), "id": token_id})

    def revoke_token(self, token: str, now: datetime | None = None) -> bool:
        """Revoke a token; False if it is unknown or was already revoked."""
        if not _looks_like(token, TOKEN_PREFIX):
            return False
        with self._stations.transaction() as conn:
            done = conn.execute(text(
                "UPDATE api_token SET revoked_at = :now WHERE token_hash = :hash AND revoked_at IS NULL"
            ), {"now": to_db(now or utcnow(), conn.dialect.name), "hash": _secret_hash(token)})
            return done.rowcount > 0

    # -- Open311 keys ----------------------------------------------------------------

    def create_open311_key(self, name: str) -> str:
        """A new api_key for an Open311 client application, returned once and never stored."""
        key = _new_secret(OPEN311_KEY_PREFIX)
        with self._stations.transaction() as conn:
            conn.execute(text("INSERT INTO open311_key (name, key_hash) VALUES (:name, :hash)"),
                         {"name": _check_name(name), "hash": _secret_hash(key)})
        return key

    def open311_key_id(self, key: str) -> int | None:
        if not _looks_like(key, OPEN311_KEY_PREFIX):
            return None
        with self._stations.reading() as conn:
            return conn.execute(text(
                "SELECT id FROM open311_key WHERE key_hash = :hash AND revoked_at IS NULL"
            ), {"hash": _secret_hash(key)}).scalar()

    def revoke_open311_key(self, key: str, now: datetime | None = None) -> bool:
        if not _looks_like(key, OPEN311_KEY_PREFIX):
            return False
        with self._stations.transaction() as conn:
            done = conn.execute(text(
                "UPDATE open311_key SET revoked_at = :now WHERE key_hash = :hash AND revoked_at IS NULL"
            ), {"now": to_db(now or utcnow(), conn.dialect.name), "hash": _secret_hash(key)})
            return done.rowcount > 0

    # -- station ownership ------------------------------------------------------------

    def assign_stations(self, org_code: str, source: str | None = None, source_ids: Sequence[str] = (),
                        manager_email: str | None = None) -> int:
        """Give stations to an organisation (and a manager); the number of stations assigned.

        No ``source_ids``: every station of ``source``. With ids and no source, each id must name
        one station of any source. All or nothing: any unknown id and nothing is written.
        Without a manager, a station staying in its organisation keeps the one it had.
        """
        ids = list(dict.fromkeys(source_ids))
        if source is None and not ids:
            raise Invalid("name the stations: a source, source ids, or both", field="source_ids")
        with self._stations.transaction() as conn:
            org = self._require_org(conn, org_code)
            manager_id = self._manager_for(conn, org, manager_email) if manager_email else None
            station_ids = (self._stations_by_ids(conn, source, ids) if ids
                           else self._stations_of_source(conn, source))
            self._refuse_moving_open_work(conn, org, station_ids)
            conn.execute(text(
                "INSERT INTO station_ops (station_id, organisation_id, manager_id) VALUES (:station, :org, :manager)"
                " ON CONFLICT (station_id) DO UPDATE SET organisation_id = excluded.organisation_id,"
                " manager_id = COALESCE(excluded.manager_id, CASE WHEN station_ops.organisation_id ="
                " excluded.organisation_id THEN station_ops.manager_id END)"
            ), [{"station": station_id, "org": org.id, "manager": manager_id} for station_id in station_ids])
            self._refuse_repeated_source_ids(conn, org)
        return len(station_ids)

    @staticmethod
    def _refuse_repeated_source_ids(conn, org) -> None:
        """An operator names its cabinets by source id (app.stations.live), so an organisation's
        stations must not share one (two sources can): checked after writing, inside the transaction."""
        repeated = conn.execute(text(
            "SELECT s.source_id FROM station_ops so JOIN station s ON s.id = so.station_id"
            " WHERE so.organisation_id = :org GROUP BY s.source_id HAVING count(*) > 1 ORDER BY s.source_id LIMIT 20"
        ), {"org": org.id}).scalars().all()
        if repeated:
            raise Conflict(f"{org.code} would run several stations with the source id(s) {', '.join(repeated)} "
                           "(from different sources); its operator feed names cabinets by source id, so they must "
                           "be unique within an organisation (nothing was assigned)", field="source_ids")

    @staticmethod
    def _refuse_moving_open_work(conn, org, station_ids: list[int]) -> None:
        """A station changes organisation only once its open work orders are done: the new one could
        not see them, and the old one would keep receiving the station's reports and reporters."""
        query = text(
            "SELECT DISTINCT w.station_id FROM work_order w JOIN station_ops so ON so.station_id = w.station_id"
            " WHERE w.station_id IN :ids AND so.organisation_id <> :org AND w.organisation_id = so.organisation_id"
            " AND w.state NOT IN ('fixed', 'closed') ORDER BY w.station_id"
        ).bindparams(bindparam("ids", expanding=True))
        busy = []
        for start in range(0, len(station_ids), _ID_BATCH):
            busy += conn.execute(query, {"ids": station_ids[start:start + _ID_BATCH], "org": org.id}).scalars().all()
        if busy:
            listed = ", ".join(map(str, busy[:20])) + (" …" if len(busy) > 20 else "")
            raise Conflict(f"{len(busy)} station(s) have open work orders under their current organisation "
                           f"(station ids {listed}); fix or close them before moving the stations to "
                           f"{org.code} (nothing was assigned)", field="source_ids")

    def _manager_for(self, conn, org, email: str) -> int:
        user = self._require_user(conn, email)
        if user.role not in MANAGER_ROLES or user.organisation_id != org.id:
            raise Invalid(f"{user.email} cannot manage {org.code}'s stations: a manager must be a "
                          f"{' or '.join(MANAGER_ROLES)} of {org.code}", field="manager")
        return user.id

    @staticmethod
    def _stations_of_source(conn, source: str) -> list[int]:
        found = conn.execute(text("SELECT id FROM station WHERE source = :source ORDER BY id"),
                             {"source": source}).scalars().all()
        if not found:
            raise Invalid(f"no station has source {source!r}", field="source")
        return list(found)

    @staticmethod
    def _stations_by_ids(conn, source: str | None, ids: list[str]) -> list[int]:
        where = "source_id IN :ids" + (" AND source = :source" if source is not None else "")
        query = text(f"SELECT id, source, source_id FROM station WHERE {where}").bindparams(
            bindparam("ids", expanding=True))
        matches: dict[str, list] = {}
        for start in range(0, len(ids), _ID_BATCH):
            for row in conn.execute(query, {"ids": ids[start:start + _ID_BATCH], "source": source}):
                matches.setdefault(row.source_id, []).append(row)
        unknown = [sid for sid in ids if sid not in matches]
        if unknown:
            where_from = f" in source {source!r}" if source is not None else ""
            raise Invalid(f"{len(unknown)} unknown source id(s){where_from}: {', '.join(unknown)} "
                          "(nothing was assigned)", field="source_ids")
        ambiguous = sorted(sid for sid, rows in matches.items() if len(rows) > 1)
        if ambiguous:
            raise Invalid(f"source id(s) {', '.join(ambiguous)} exist in several sources: give --source "
                          "(nothing was assigned)", field="source")
        return [matches[sid][0].id for sid in ids]

    def station_owner(self, station_id: int) -> tuple[int | None, int | None]:
        """(organisation id, manager id) of a station; (None, None) when no one runs it."""
        with self._stations.reading() as conn:
            row = conn.execute(text("SELECT organisation_id, manager_id FROM station_ops WHERE station_id = :id"),
                               {"id": station_id}).first()
        return (row.organisation_id, row.manager_id) if row else (None, None)
