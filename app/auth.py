"""Who is calling, and how often: staff sessions and bearer tokens, CSRF, rate limits.

- Flask-Login keeps staff pages' login sessions (session protection "strong": a session moved to
  another browser is dropped; a phone moving between networks keeps it). A request with ``Authorization: Bearer <token>`` is
  judged by its token alone (``Accounts.principal_for_token``), never by a cookie it may carry.
  ``current_principal()`` says who it is (an ``app.ops.accounts.Principal``) or None.
- Flask-WTF CSRF protects every POST/PUT/PATCH/DELETE, except requests with a bearer token (a
  cross-site form cannot set that header, and the session is not consulted for them), JSON API
  requests from callers without a logged-in session (nothing to forge: they act as anonymous),
  and views or blueprints exempted with ``csrf.exempt`` (Open311: an api_key, no cookie). Forms send the
  ``csrf_token`` field (``{{ csrf_token() }}``); a session caller of the JSON API sends the same
  token in an ``X-CSRFToken`` header (e.g. read from ``<meta name="csrf-token">``).
- Flask-Limiter counts in Redis (RATELIMIT_STORAGE_URI, default REDIS_URL) so all workers share
  the counts. If Redis is unreachable each worker falls back to counting in its own memory (the
  limits still hold per worker, looser by the number of workers) and goes back to Redis when it
  answers again. No limit applies unless a route asks: ``@limiter.limit("5 per 10 minutes")``.
  Keys are per client address: behind a reverse proxy, the app must see the client's address
  (werkzeug's ProxyFix), or every caller shares one count.
  A limit answers 429 with ``Retry-After`` and the API's JSON error envelope
  (Open311's ``[{"code", "description"}]`` under /open311).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
import time
from urllib.parse import urlsplit

from flask import Blueprint, current_app, has_request_context, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from app.api.blueprint import bp as api_bp
from app.api.serialize import error, json_response
from app.ops.accounts import Accounts, Principal
from app.dbtime import utcnow
from app.web import LANGS, page_lang  # the finder's rule: ?lang=, else Accept-Language

OPEN311_PREFIX = "/open311/"
STAFF_HOME = "/staff/"  # where a login without ``next`` lands
LOGIN_LIMIT = "10 per minute"  # password guesses per client address
ACCOUNT_LOGIN_LIMIT = "20 per hour"  # and per account, however many addresses guess at it
SECRET_KEY_MIN_LENGTH = 32

login_manager = LoginManager()
login_manager.session_protection = "strong"


def _browser_identifier() -> str:
    """What "strong" session protection compares: the browser, not its address. Flask-Login's own
    identifier includes the client address, and a 站长's phone changes address whenever it moves
    between Wi-Fi and 4G; a session cookie carried into another browser (another User-Agent)
    is still dropped."""
    agent = request.headers.get("User-Agent", "")
    return hashlib.sha512(agent.encode("utf-8", "replace")).hexdigest()


# Flask-Login (pinned in requirements.txt) has no public setting for this; the attribute is the
# generator its session protection calls.
login_manager._session_identifier_generator = _browser_identifier
csrf = CSRFProtect()
# Storage, key prefix and fallback come from the app's config (RATELIMIT_*), at init_app.
def client_key() -> str:
    """Whom a rate limit counts: an IPv4 address, or an IPv6 address's /64 (one home or phone
    line gets a whole /64, so counting single IPv6 addresses would give anyone endless tries)."""
    address = get_remote_address()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


def limit_form_field(name: str) -> str:
    """A form field a rate-limit key or exemption is made from; '' when the body cannot be read
    (over MAX_CONTENT_LENGTH, say). Flask-Limiter takes any exception raised while it weighs a
    request for its storage failing, and would then count in this process's memory for a while
    (every worker apart, counts restarted); the view answers the 413 itself."""
    try:
        return request.form.get(name, "")
    except HTTPException:
        return ""


limiter = Limiter(key_func=client_key, in_memory_fallback_enabled=True)

bp = Blueprint("staff_auth", __name__, url_prefix="/staff")

TEXTS = {
    "zh-CN": {
        "title": "工作人员登录", "site": "驿站 · 运维", "email": "邮箱", "password": "密码", "submit": "登录",
        "failed": "邮箱或密码不正确，或账号已停用。", "expired": "页面已过期，请重新登录。",
        "other_lang": "English", "other_code": "en",
    },
    "en": {
        "title": "Staff login", "site": "Yizhan · Operations", "email": "E-mail", "password": "Password",
        "submit": "Log in", "failed": "Wrong e-mail or password, or the account is inactive.",
        "expired": "This page had expired; please log in again.", "other_lang": "中文", "other_code": "zh-CN",
    },
}
assert set(TEXTS) == set(LANGS)


class StaffUser(UserMixin):
    """Flask-Login's view of a Principal."""

    def __init__(self, principal: Principal):
        self.principal = principal

    def get_id(self) -> str:
        return str(self.principal.id)


def _accounts() -> Accounts:
    return Accounts(current_app.extensions["yizhan_store"])


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def current_principal() -> Principal | None:
    """Who is calling (session or token), or None when anonymous or outside a request."""
    if not has_request_context() or not current_user.is_authenticated:
        return None
    return current_user.principal


@login_manager.user_loader
def _user_from_session(user_id: str):
    if bearer_token() is not None:
        return None  # a token request is judged by its token alone
    try:
        principal = _accounts().user(int(user_id))
    except ValueError:
        return None
    if principal is None or not secrets.compare_digest(session.get("credential", ""), principal.credential):
        return None  # deactivated, or the password changed since this session logged in
    return StaffUser(principal)


@login_manager.request_loader
def _user_from_token(req):
    token = bearer_token()
    principal = _accounts().principal_for_token(token, utcnow()) if token else None
    return StaffUser(principal) if principal else None


def _is_api() -> bool:
    return request.path.startswith(api_bp.url_prefix + "/")


def _wants_json() -> bool:
    return _is_api() or bearer_token() is not None


@login_manager.unauthorized_handler
def _unauthorized():
    if _wants_json():
        response = json_response(error("unauthorized", "Log in, or send Authorization: Bearer <token> "
                                                        "(a live token of an active user)."), 401)
        invalid = ', error="invalid_token"' if bearer_token() is not None else ""
        response.headers["WWW-Authenticate"] = f'Bearer realm="yizhan"{invalid}'
        return response
    return redirect(url_for("staff_auth.login", next=request.full_path.rstrip("?")))


def _check_csrf():
    """Flask-WTF's check, for everything but bearer-token requests (see the module docstring)."""
    if not current_app.config["WTF_CSRF_ENABLED"] or bearer_token() is not None:
        return
    if request.method not in current_app.config["WTF_CSRF_METHODS"]:
        # Reads need no check, and must not touch the session: reading it marks the answer
        # "Vary: Cookie", which keeps caches from sharing public answers (/meta, the GBFS feed).
        return
    if _is_api() and not current_user.is_authenticated:
        return  # no session speaks for this caller, so there is nothing to forge; a staff view answers 401
    csrf.protect(apply_exemptions=True)


def _retry_after(exc) -> int:
    """Whole seconds until the breached limit's window resets (its whole window if unknown)."""
    try:
        reset_at, _remaining = limiter.current_limit.window
        return max(1, math.ceil(reset_at - time.time()))
    except Exception:  # storage gone meanwhile, or a 429 not from the limiter
        limit = getattr(exc, "limit", None)
        return limit.limit.get_expiry() if limit is not None else 60


def _rate_limited(exc):
    seconds = _retry_after(exc)
    message = f"Too many requests; try again in {seconds} s."
    if request.path.startswith(OPEN311_PREFIX):
        response = json_response([{"code": 429, "description": message}], 429)
    else:
        response = json_response(error("rate_limited", message), 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def _csrf_failed(exc: CSRFError):
    if request.endpoint == "staff_auth.login":
        return _login_page("expired", 400)
    if request.path.startswith(OPEN311_PREFIX):
        return json_response([{"code": 400, "description": exc.description}], 400)
    if _wants_json():
        return json_response(error("csrf_failed", f"{exc.description} Send the session's token in the "
                                                  "X-CSRFToken header."), 400)
    return exc


def _safe_next(value: str | None) -> str:
    """``next`` only when it is a path on this site (no scheme, host or protocol-relative //)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return STAFF_HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(not ch.isprintable() or ch.isspace() for ch in value):
        return STAFF_HOME
    return value


def _login_page(problem: str | None = None, status: int = 200, email: str = ""):
    lang = page_lang()
    texts = TEXTS[lang]
    next_path = _safe_next(request.values.get("next"))
    query = {"next": next_path} if next_path != STAFF_HOME else {}
    html = render_template(
        "staff/login.html", lang=lang, t=texts, problem=texts[problem] if problem else None, email=email,
        next_path=next_path,
        action=url_for("staff_auth.login", **query, **({"lang": lang} if "lang" in request.args else {})),
        switch=url_for("staff_auth.login", **query, lang=texts["other_code"]),
    )
    response = current_app.make_response((html, status))
    response.headers["Cache-Control"] = "no-store"  # it carries a CSRF token
    response.headers["Vary"] = "Accept-Language, Cookie"
    return response  # framing, CSP, Referer: app.security's STAFF policy


def _account_key() -> str:
    """The account a login tries, as a MAC under the site's secret: no e-mail addresses in the
    limiter's storage, not even as a plain hash anyone could match against a staff list."""
    email = limit_form_field("email").strip().lower()
    secret = current_app.config["SECRET_KEY"]
    mac = hmac.new(secret.encode() if isinstance(secret, str) else secret, email.encode("utf-8", "replace"),
                   hashlib.sha256)
    return "login-account:" + mac.hexdigest()[:32]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT, methods=["POST"])
# Failed tries only: the owner logging in and out all day must not lock themselves out.
@limiter.limit(ACCOUNT_LOGIN_LIMIT, methods=["POST"], key_func=_account_key,
               deduct_when=lambda response: response.status_code != 302)
def login():
    if request.method == "GET":
        if current_principal() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return _login_page()
    email = request.form.get("email", "")
    principal = _accounts().authenticate(email, request.form.get("password", ""))
    if principal is None:
        return _login_page("failed", 200, email=email.strip()[:254])
    session.clear()  # nothing from before the login (e.g. an old CSRF token) carries over
    login_user(StaffUser(principal))
    session["credential"] = principal.credential
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    return redirect(url_for("staff_auth.login"))


def _ensure_secret_key(app) -> None:
    key = app.config.get("SECRET_KEY")
    if key:
        if len(key) < SECRET_KEY_MIN_LENGTH:
            app.logger.warning("YIZHAN_SECRET_KEY is shorter than %d characters: use a long random value "
                               "(python -c 'import secrets; print(secrets.token_hex(32))').", SECRET_KEY_MIN_LENGTH)
        return
    app.config["SECRET_KEY"] = secrets.token_hex(32)
    log = app.logger.warning if (app.debug or app.testing) else app.logger.error
    log("YIZHAN_SECRET_KEY is not set: this process made a random one, so staff logins end when it "
        "restarts and are not shared between workers. Set YIZHAN_SECRET_KEY in production.")


class _ReadTrackingSession(SecureCookieSession):
    """A session that knows whether the answer depended on it.

    Flask marks a session "accessed" (and so the answer ``Vary: Cookie``) as soon as anything
    touches it, and Flask-Login's after-request housekeeping touches it on every request. Public
    answers (/meta, searches, the GBFS feed) never ask who is calling, yet came out ``Vary:
    Cookie``, so no cache could share them. Here only reading a key counts, and the
    housekeeping key does not."""

    _HOUSEKEEPING = frozenset({"_remember"})  # Flask-Login checks it after every request
    _read = False

    @property
    def accessed(self) -> bool:
        return self._read or self.modified

    @accessed.setter
    def accessed(self, _value: bool) -> None:
        pass  # Flask sets it on any touch; reads below decide instead

    def _note(self, key) -> None:
        if key not in self._HOUSEKEEPING:
            self._read = True

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self._note(key)
        return super().__contains__(key)

    def get(self, key, default=None):
        self._note(key)
        return super().get(key, default)

    def setdefault(self, key, default=None):
        self._read = True
        return super().setdefault(key, default)

    def __iter__(self):
        self._read = True
        return super().__iter__()


class _SessionInterface(SecureCookieSessionInterface):
    session_class = _ReadTrackingSession

    def should_set_cookie(self, app, session) -> bool:
        # Refresh a permanent session's cookie only on answers that used it: a Set-Cookie on a
        # public, cacheable answer would hand one caller's session to the next.
        return session.modified or (session.accessed and super().should_set_cookie(app, session))


def init_app(app) -> None:
    _ensure_secret_key(app)
    # Flask's defaults are HttpOnly, no SameSite and not Secure: tighten what was not chosen.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config.get("YIZHAN_PUBLIC_URL", "").startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "yizhan")
    # A moving window: "60 per minute" means any 60 seconds, not a clock minute, so a burst cannot
    # get twice the limit across the turn of a minute (and a test's 61 requests cannot straddle it).
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    if app.config["RATELIMIT_STORAGE_URI"].startswith(("redis://", "rediss://")):
        # A Redis that hangs must cost a request half a second, not a worker.
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 0.5, "socket_timeout": 0.5})
    # Our own hook runs Flask-WTF's check, so that bearer-token requests can skip it.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False

    # Its warnings (Redis gone, back to Redis) propagate to app.logs' JSON lines, past its NullHandler.
    limiter.init_app(app)  # first: a flood is counted before anything else is done for it
    app.session_interface = _SessionInterface()
    csrf.init_app(app)
    app.before_request(_check_csrf)
    login_manager.init_app(app)
    app.register_error_handler(429, _rate_limited)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_blueprint(bp)
