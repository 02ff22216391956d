"""Reads on replicas, writes on the primary: where each read goes is decided here, and only here.

The station store keeps taking an engine for reads; with ``DATABASE_REPLICA_URLS`` that "engine"
is a ReadRouter, which hands out each connection from the server the rules below pick:

- Outside a request that may use replicas (writes, staff, CLI jobs), every read goes to the
  primary. A request may use replicas when init_app says so (a GET or HEAD without staff
  credentials from a client that has not just written), until it writes: from its first write on,
  its reads go to the primary too (read-your-writes within the request).
- Such a request sticks to the server of its first read (one snapshot for the whole answer, e.g.
  a road network's token and its graph), chosen among, in order: the healthy replicas (up, and
  no further behind than ``max_lag_s``), in turn; the primary; replicas that are up but behind
  (only while the primary is unreachable: old answers beat none). A server that refuses the
  connection is marked down and the next is tried at once.
- Replicas are checked at most every ``check_every_s`` per process, by whichever thread asks
  first (the others keep the last verdict): up or down, and how far behind (see LAG_SQL).
- A replica lost in the middle of a request: init_app's wrapper marks it down and runs the
  (read-only) view again on the next server. When no server can answer, the database error
  goes on to app.api.errors, which answers the documented 503.

No Flask below init_app: the rules are plain code with a clock, tested directly.
"""
from __future__ import annotations

import contextvars
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

# How far behind a standby is, in seconds (0: it has replayed all it received). On an idle
# primary the last replayed transaction grows old although nothing is missing, so a standby
# that has replayed everything it received counts as current; one that is behind is as old as
# the last transaction it replayed. Not in recovery (a promoted standby, or a URL that names the
# primary): current. NULL: it has replayed nothing yet, and how far behind is unknown.
LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END"
)

# SQLSTATEs that say the server is gone or going, not that the statement was wrong or slow:
# connection exceptions (08…), admin/crash shutdown, "cannot connect now" (starting, stopping).
_GONE_STATES = ("57P01", "57P02", "57P03")


def server_gone(exc: BaseException) -> bool:
    """Whether a database error means the server (or the connection to it) is lost, so the same
    read on another server may succeed. A statement timeout or a bad query is not."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None)
    if state is None:  # psycopg's own: could not connect, connection lost or closed
        return type(orig).__name__ == "OperationalError"
    return state.startswith("08") or state in _GONE_STATES


@dataclass
class Server:
    name: str  # "primary", "replica 1", …: for logs (never the URL, which may hold a password)
    engine: Engine
    up: bool = True
    lag_s: float | None = 0.0
    failed_at: float | None = None  # when a connection to it last failed (monotonic seconds)


@dataclass
class _Request:
    replicas_allowed: bool
    server: Server | None = None  # the server this request reads from, once chosen
    wrote: bool = False
    # Servers lost during this request: never tried again by it, so running it again ends.
    tried: set = field(default_factory=set)


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("yizhan_read_routing", default=None)


class ReadRouter:
    """The store's reader: connections from the primary or a replica (see the module's rules)."""

    def __init__(self, primary: Engine, replicas: Sequence[Engine], *, writer: Engine | None = None,
                 max_lag_s: float = 10.0, check_every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic):
        self.primary = Server("primary", primary)
        self.replicas = [Server(f"replica {i}", e) for i, e in enumerate(replicas, 1)]
        self.max_lag_s = max_lag_s
        self.check_every_s = check_every_s
        self._clock = clock
        self._checked_at: float | None = None
        self._checking = threading.Lock()
        self._turn = itertools.count()
        if writer is not None:
            # Every write runs in a transaction on the writer engine: its first BEGIN in a request
            # sends the rest of that request's reads to the primary.
            event.listen(writer, "begin", lambda _conn: self.note_write())

    # -- what the store calls (the parts of an Engine it uses) ---------------------------

    @property
    def dialect(self):
        return self.primary.engine.dialect

    def connect(self) -> Connection:
        return self._first_that_connects(lambda engine: engine.connect())

    def raw_connection(self):
        return self._first_that_connects(lambda engine: engine.raw_connection())

    # -- a request's routing -------------------------------------------------------

    def begin_request(self, replicas_allowed: bool) -> contextvars.Token:
        return _current.set(_Request(replicas_allowed and bool(self.replicas)))

    @staticmethod
    def end_request(token: contextvars.Token) -> None:
        _current.reset(token)

    @staticmethod
    def note_write() -> None:
        state = _current.get()
        if state is not None:
            state.wrote = True
            state.replicas_allowed = False
            state.server = None

    def failed_over(self, exc: BaseException) -> bool:
        """After a read of this request failed: True if it lost a replica (now marked down), so the
        request may run again on the next server; False if the error is to be answered."""
        state = _current.get()
        if state is None or state.server is None or state.server is self.primary or not server_gone(exc):
            return False
        self._mark_down(state.server, exc)
        state.tried.add(state.server.name)
        state.server = None
        return True

    # -- the choice ----------------------------------------------------------------

    def _candidates(self) -> list[Server]:
        state = _current.get()
        if state is None or not state.replicas_allowed:
            return [self.primary]
        if state.server is not None:
            return [state.server]
        self._check_if_due()
        fresh = [s for s in self.replicas if self._fresh(s)]
        behind = [s for s in self.replicas if s.up and s not in fresh]
        if fresh:
            start = next(self._turn) % len(fresh)
            fresh = fresh[start:] + fresh[:start]
        order = [*fresh, self.primary, *behind]
        order = [s for s in order if s.name not in state.tried]
        # A primary whose connection failed within the last check interval goes after the replicas
        # that are behind; one that failed longer ago is tried in its place (it may be back).
        if self._recently_failed(self.primary) and self.primary in order:
            order.remove(self.primary)
            order.append(self.primary)
        return order or [self.primary]

    def _first_that_connects(self, connect):
        candidates = self._candidates()
        state = _current.get()
        for i, server in enumerate(candidates):
            try:
                conn = connect(server.engine)
            except Exception as exc:  # SQLAlchemy's error (connect) or the driver's (raw_connection)
                if i == len(candidates) - 1 or not server_gone(exc):
                    raise
                self._mark_down(server, exc)
                continue
            if server is self.primary:
                server.failed_at = None
            if state is not None and state.replicas_allowed:
                state.server = server
            return conn
        raise AssertionError("unreachable: the last candidate raises")

    def _fresh(self, server: Server) -> bool:
        return server.up and server.lag_s is not None and server.lag_s <= self.max_lag_s

    def status(self) -> list[dict]:
        """Each replica as /readyz and /metrics show it (app.health's hook), checked if due."""
        self._check_if_due()
        return [{"name": s.name, "healthy": self._fresh(s), "up": s.up, "lag_s": s.lag_s} for s in self.replicas]

    def _recently_failed(self, server: Server) -> bool:
        return server.failed_at is not None and self._clock() - server.failed_at < self.check_every_s

    def _mark_down(self, server: Server, exc: BaseException) -> None:
        server.failed_at = self._clock()
        if server is not self.primary:
            server.up = False
            # Its pooled connections are dead too: the next check (and use) connects afresh.
            server.engine.dispose()
        log.warning("database %s unreachable, reads go elsewhere: %s", server.name,
                    type(getattr(exc, "orig", exc)).__name__)

    # -- health --------------------------------------------------------------------

    def _check_if_due(self) -> None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self.check_every_s:
            return
        if not self._checking.acquire(blocking=False):
            return  # another thread is checking; use the last verdict meanwhile
        try:
            self._checked_at = now
            for server in self.replicas:
                self._check(server)
        finally:
            self._checking.release()

    def check_now(self) -> None:
        """Check every replica now (tests, and readiness probes that must not wait a second)."""
        with self._checking:
            self._checked_at = self._clock()
            for server in self.replicas:
                self._check(server)

    def _check(self, server: Server) -> None:
        try:
            with server.engine.connect() as conn:
                lag = conn.exec_driver_sql(LAG_SQL).scalar()
        except Exception as exc:  # down, refusing, or gone: all mean "not now"
            if server.up:
                self._mark_down(server, exc)
            return
        if not server.up:
            log.warning("database %s is back", server.name)
        server.up, server.lag_s = True, None if lag is None else float(lag)

    def dispose(self) -> None:
        for server in [self.primary, *self.replicas]:
            server.engine.dispose()


# -- Flask: which requests may read from replicas, and read-your-writes across requests ------

# A client that wrote reads from the primary for this long afterwards: a replica used may be up to
# the lag limit behind, and is judged once per check interval (plus a second of slack).
def write_window_s(router: ReadRouter) -> int:
    return int(router.max_lag_s + router.check_every_s) + 1


WROTE_COOKIE = "yizhan_wrote"
_SAFE = ("GET", "HEAD")


def init_app(app, router: ReadRouter) -> None:
    """Route each request's reads; call after every blueprint is registered (it wraps their views)."""
    from flask import request

    window = write_window_s(router)

    def replicas_allowed() -> bool:
        if request.method not in _SAFE or request.authorization is not None or WROTE_COOKIE in request.cookies:
            return False
        if app.config["SESSION_COOKIE_NAME"] in request.cookies:
            # A staff login reads its own writes and its revoked credentials from the primary. The
            # session is opened aside, so public answers do not gain "Vary: Cookie".
            staff = app.session_interface.open_session(app, request)
            if staff and "_user_id" in staff:
                return False
        return True

    @app.before_request
    def _route_reads():
        request.environ["yizhan.read_routing"] = router.begin_request(replicas_allowed())

    @app.after_request
    def _remember_writes(response):
        state = _current.get()
        if state is not None and state.wrote:
            response.set_cookie(WROTE_COOKIE, "1", max_age=window, httponly=True, samesite="Lax",
                                secure=request.is_secure)
        return response

    @app.teardown_request
    def _forget(_exc):
        token = request.environ.pop("yizhan.read_routing", None)
        if token is not None:
            router.end_request(token)

    for name, view in list(app.view_functions.items()):
        app.view_functions[name] = _failing_over(router, view)


def _failing_over(router: ReadRouter, view):
    """Run the view again when a replica it read from was lost meanwhile (only requests that may
    read from replicas do: GETs that have not written, which are safe to repeat)."""

    @functools.wraps(view)
    def run(*args, **kwargs):
        while True:
            try:
                return view(*args, **kwargs)
            except DBAPIError as exc:  # the store raises SQLAlchemy's errors, also on its raw path
                if not router.failed_over(exc):
                    raise

    return run
