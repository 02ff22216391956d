"""Staff login (sessions + CSRF), bearer tokens, and rate limits (Redis), on both stores.

The shared ``app`` serves the login page itself; a second app per backend (``probe``) adds a few
test-only routes to see who a request is and how CSRF treats it.
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import textwrap
import uuid

import pytest
import redis
from flask import jsonify
from flask_login import login_required
from flask_wtf.csrf import generate_csrf

from app import create_app
from app.auth import csrf, current_principal, limiter
from app.extensions import db
from app.ops.accounts import Accounts

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _client_address() -> str:
    """A documentation-range IPv6 address of its own: rate-limit counts in the shared Redis
    never meet another test's, another run's or another checkout's."""
    hexes = uuid.uuid4().hex[:24]
    return "2001:db8:" + ":".join(hexes[i:i + 4] for i in range(0, 24, 4))


@pytest.fixture
def web(client):
    """The shared app's client, from an address of its own (login attempts are counted by address)."""
    client.environ_base["REMOTE_ADDR"] = _client_address()
    return client


@pytest.fixture
def staff(store):
    accounts = Accounts(store)
    accounts.create_organisation("hetang", "荷塘区")
    user = accounts.create_user("li@example.cn", PASSWORD, "station_manager", org_code="hetang")
    return accounts, user


def _csrf_token(client, path="/staff/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return CSRF.search(page.get_data(as_text=True)).group(1)


def _log_in(client, email="li@example.cn", password=PASSWORD, **extra):
    token = _csrf_token(client)
    return client.post("/staff/login", data={"csrf_token": token, "email": email, "password": password, **extra})


# -- the login page ---------------------------------------------------------------------------

def test_login_page_in_both_languages_without_third_party_hosts(web):
    zh = web.get("/staff/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    en = web.get("/staff/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    asked = web.get("/staff/login?lang=en", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == en.status_code == asked.status_code == 200
    assert '<html lang="zh-CN">' in zh.get_data(as_text=True) and "工作人员登录" in zh.get_data(as_text=True)
    assert '<html lang="en">' in en.get_data(as_text=True) and "Staff login" in en.get_data(as_text=True)
    assert "Staff login" in asked.get_data(as_text=True) and 'action="/staff/login?lang=en"' in asked.get_data(as_text=True)
    for page in (zh, en):
        html = page.get_data(as_text=True)
        assert "://" not in html  # nothing from another host: no CDN, no fonts, no scripts
        assert CSRF.search(html) and 'name="viewport"' in html
        assert page.headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


def test_login_post_without_csrf_token_is_refused(web, staff):
    web.get("/staff/login")  # a session exists; the form's token is simply not sent
    refused = web.post("/staff/login", data={"email": "li@example.cn", "password": PASSWORD})
    assert refused.status_code == 400
    assert "工作人员登录" in refused.get_data(as_text=True)  # the form again, to retry
    forged = web.post("/staff/login", data={"email": "li@example.cn", "password": PASSWORD,
                                               "csrf_token": "forged"})
    assert forged.status_code == 400
    assert web.get("/staff/login").status_code == 200  # still not logged in (it would redirect)


@pytest.mark.parametrize("next_value", ["//evil.example/x", "https://evil.example/", "/\\evil.example",
                                        "javascript:alert(1)", "staff", ""])
def test_login_redirects_only_to_local_paths(web, staff, next_value):
    done = _log_in(web, next=next_value)
    assert done.status_code == 302 and done.headers["Location"] == "/staff/"


def test_wrong_password_and_unknown_email_get_the_same_generic_answer(web, staff):
    accounts, _ = staff
    wrong = _log_in(web, password="not the password")
    unknown = _log_in(web, email="nobody@example.cn")
    accounts.set_active("li@example.cn", False)
    inactive = _log_in(web)
    for page in (wrong, unknown, inactive):
        assert page.status_code == 200
        assert "邮箱或密码不正确，或账号已停用。" in page.get_data(as_text=True)
        assert "_user_id" not in _session(web)
    assert 'value="nobody@example.cn"' in unknown.get_data(as_text=True)  # kept to retype only the password


def _session(client) -> dict:
    with client.session_transaction() as sess:
        return dict(sess)


def test_login_and_logout(probe, staff):
    done = _log_in(probe, next="/staff/queue?status=open")
    assert done.status_code == 302 and done.headers["Location"] == "/staff/queue?status=open"
    cookie = done.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    again = probe.get("/staff/login")
    assert again.status_code == 302 and again.headers["Location"] == "/staff/"

    assert probe.post("/staff/logout").status_code == 400  # CSRF applies to logout too
    token = probe.get("/_probe/csrf").get_data(as_text=True)  # as a logged-in page would carry it
    out = probe.post("/staff/logout", data={"csrf_token": token})
    assert out.status_code == 302 and out.headers["Location"] == "/staff/login"
    assert probe.get("/staff/login").status_code == 200  # logged out: the form again
    assert probe.get("/api/v1/_probe/whoami").get_json()["email"] is None


# -- rate limits --------------------------------------------------------------------------

def test_login_is_rate_limited_per_address_in_redis(app, web, staff):
    address = _client_address()
    other = _client_address()
    token = _csrf_token(web)
    form = {"csrf_token": token, "email": "li@example.cn", "password": "guess"}
    for _ in range(10):
        assert web.post("/staff/login", data=form, environ_base={"REMOTE_ADDR": address}).status_code == 200
    limited = web.post("/staff/login", data=form, environ_base={"REMOTE_ADDR": address})
    assert limited.status_code == 429
    body = limited.get_json()
    assert body["error"]["code"] == "rate_limited" and body["error"]["field"] is None
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert f"{limited.headers['Retry-After']} s" in body["error"]["message"]
    # Another address is not affected; the page itself (GET) is not counted.
    assert web.post("/staff/login", data=form, environ_base={"REMOTE_ADDR": other}).status_code == 200
    assert web.get("/staff/login", environ_base={"REMOTE_ADDR": address}).status_code == 200
    # The counts are in Redis, where every worker sees them.
    stored = redis.Redis.from_url(app.config["RATELIMIT_STORAGE_URI"])
    network = str(ipaddress.ip_network(f"{address}/64", strict=False))  # IPv6 is counted by /64
    assert list(stored.scan_iter(match=f"*{network}*"))


# -- bearer tokens, sessions and CSRF on a JSON route ---------------------------------------

@pytest.fixture(scope="module")
def probe_apps():
    made = {}
    yield made
    for app in made.values():
        with app.app_context():
            db.engine.dispose()


def _probe_app(url: str):
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})

    @app.get("/api/v1/_probe/whoami")
    def probe_whoami():
        who = current_principal()
        return jsonify(email=who.email if who else None, role=who.role if who else None)

    @app.post("/api/v1/_probe/act")
    @login_required
    def probe_act():
        return jsonify(done=current_principal().email)

    @app.get("/_probe/page")
    @login_required
    def probe_page():
        return "staff only"

    @app.get("/_probe/csrf")
    def probe_csrf():
        return generate_csrf()

    @app.post("/open311/v2/_probe.json")
    @csrf.exempt  # as Open311 is: an api_key, no cookie
    @limiter.limit("1 per minute")
    def probe_open311():
        return jsonify([])

    return app


@pytest.fixture
def probe(probe_apps, apps, backend, store):
    if backend not in probe_apps:
        probe_apps[backend] = _probe_app(apps[backend].config["SQLALCHEMY_DATABASE_URI"])
    app = probe_apps[backend]
    original = app.extensions["yizhan_store"]
    app.extensions["yizhan_store"] = store
    try:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = _client_address()
        yield client
    finally:
        app.extensions["yizhan_store"] = original


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_bearer_token_loads_its_principal(probe, staff):
    accounts, user = staff
    token = accounts.create_token("li@example.cn")
    answer = probe.get("/api/v1/_probe/whoami", headers=_bearer(token))
    assert answer.get_json() == {"email": "li@example.cn", "role": "station_manager"}
    assert "Set-Cookie" not in answer.headers  # a token request starts no session
    assert probe.get("/api/v1/_probe/whoami", headers={"Authorization": f"bearer {token}"}).get_json()["email"] \
        == "li@example.cn"
    assert probe.get("/api/v1/_probe/whoami").get_json() == {"email": None, "role": None}
    accounts.revoke_token(token)
    assert probe.get("/api/v1/_probe/whoami", headers=_bearer(token)).get_json()["email"] is None


def test_bearer_requests_skip_csrf_and_bad_tokens_get_401(probe, staff):
    accounts, _ = staff
    token = accounts.create_token("li@example.cn")
    done = probe.post("/api/v1/_probe/act", headers=_bearer(token))
    assert done.status_code == 200 and done.get_json() == {"done": "li@example.cn"}
    refused = probe.post("/api/v1/_probe/act", headers=_bearer("yzt_not-a-token"))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "unauthorized"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    anonymous = probe.post("/api/v1/_probe/act")  # no token, no session: nothing to forge, just not allowed
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthorized"
    assert 'error="invalid_token"' not in anonymous.headers["WWW-Authenticate"]


def test_session_callers_of_the_json_api_need_the_csrf_header(probe, staff):
    assert _log_in(probe).status_code == 302
    missing = probe.post("/api/v1/_probe/act")
    assert missing.status_code == 400
    assert missing.get_json()["error"]["code"] == "csrf_failed"
    token = probe.get("/_probe/csrf").get_data(as_text=True)
    done = probe.post("/api/v1/_probe/act", headers={"X-CSRFToken": token})
    assert done.status_code == 200 and done.get_json() == {"done": "li@example.cn"}
    # A bearer header makes it a token request: the session cookie it also carries counts for nothing.
    assert probe.get("/api/v1/_probe/whoami", headers=_bearer("yzt_unknown")).get_json()["email"] is None


def test_pages_send_anonymous_users_to_the_login(probe, staff):
    away = probe.get("/_probe/page?x=1")
    assert away.status_code == 302
    assert away.headers["Location"] == "/staff/login?next=/_probe/page?x%3D1"
    done = _log_in(probe, next="/_probe/page?x=1")
    assert done.headers["Location"] == "/_probe/page?x=1"
    assert probe.get("/_probe/page").get_data(as_text=True) == "staff only"


def test_session_is_dropped_when_it_moves_to_another_browser(probe, staff):
    assert _log_in(probe).status_code == 302
    assert probe.get("/api/v1/_probe/whoami").get_json()["email"] == "li@example.cn"
    # A phone moving from Wi-Fi to 4G keeps its session ...
    roaming = probe.get("/api/v1/_probe/whoami", environ_base={"REMOTE_ADDR": "198.51.100.77"})
    assert roaming.get_json()["email"] == "li@example.cn"
    # ... a session cookie carried into another browser does not (session protection "strong").
    moved = probe.get("/api/v1/_probe/whoami", headers={"User-Agent": "another browser"})
    assert moved.get_json()["email"] is None


def test_deactivated_users_session_stops_at_once(probe, staff):
    accounts, _ = staff
    assert _log_in(probe).status_code == 302
    accounts.set_active("li@example.cn", False)
    assert probe.get("/api/v1/_probe/whoami").get_json()["email"] is None


def test_rate_limit_under_open311_answers_in_its_format(probe):
    address = _client_address()
    assert probe.post("/open311/v2/_probe.json", environ_base={"REMOTE_ADDR": address}).status_code == 200
    limited = probe.post("/open311/v2/_probe.json", environ_base={"REMOTE_ADDR": address})
    assert limited.status_code == 429
    body = limited.get_json()
    assert isinstance(body, list) and body[0]["code"] == 429 and "try again" in body[0]["description"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


FALLBACK_PROBE = textwrap.dedent("""
    from app import create_app
    from app.auth import limiter

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"})  # nothing listens there

    @app.get("/_probe/limited")
    @limiter.limit("2 per minute")
    def limited():
        return "ok"

    client = app.test_client()
    print([client.get("/_probe/limited").status_code for _ in range(3)])
""")


def test_limits_still_hold_in_memory_when_redis_is_unreachable():
    """Run apart: the fallback marks the process-wide limiter's storage dead."""
    done = subprocess.run([sys.executable, "-c", FALLBACK_PROBE], capture_output=True, text=True, timeout=60,
                          cwd=__file__.rsplit("/tests/", 1)[0])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[200, 200, 429]"
    assert "falling back to in-memory storage" in done.stderr


# -- the secret key ------------------------------------------------------------------------

def test_secret_key_from_the_environment_or_random_per_process(monkeypatch, caplog):
    monkeypatch.delenv("YIZHAN_SECRET_KEY", raising=False)
    first = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    second = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert re.fullmatch(r"[0-9a-f]{64}", first.config["SECRET_KEY"])
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]
    assert "YIZHAN_SECRET_KEY is not set" in caplog.text
    key = "k" * 48
    monkeypatch.setenv("YIZHAN_SECRET_KEY", key)
    assert create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).config["SECRET_KEY"] == key


def test_behind_a_proxy_the_client_address_comes_from_the_forwarded_header(monkeypatch, tmp_path):
    """YIZHAN_PROXY_HOPS=1 trusts one proxy's X-Forwarded-For; unset, the header is ignored
    (anyone could send it to dodge the rate limits)."""
    from flask import request

    from app import create_app

    seen = {}
    for hops in ("0", "1"):
        monkeypatch.setenv("YIZHAN_PROXY_HOPS", hops)
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/proxy{hops}.sqlite3", "TESTING": True})
        app.add_url_rule("/_addr", "addr", lambda: request.remote_addr)
        seen[hops] = app.test_client().get("/_addr", headers={"X-Forwarded-For": "203.0.113.9"},
                                           environ_base={"REMOTE_ADDR": "10.0.0.1"}).text
    assert seen == {"0": "10.0.0.1", "1": "203.0.113.9"}


def test_an_ipv6_64_is_one_client_for_the_limits(web, staff):
    """A phone line or a home gets a whole /64: its addresses share one count."""
    first = _client_address()
    neighbour = first.rsplit(":", 1)[0] + ":ffff"  # the same /64
    token = _csrf_token(web)
    form = {"csrf_token": token, "email": f"{uuid.uuid4().hex}@example.cn", "password": "guess"}
    for i in range(10):
        address = first if i % 2 else neighbour
        assert web.post("/staff/login", data=form, environ_base={"REMOTE_ADDR": address}).status_code == 200
    assert web.post("/staff/login", data=form, environ_base={"REMOTE_ADDR": neighbour}).status_code == 429


def test_one_account_takes_twenty_failed_logins_an_hour_from_anywhere(web, store):
    accounts = Accounts(store)
    accounts.create_organisation("guessed", "被猜的单位")
    email = f"{uuid.uuid4().hex[:12]}@example.cn"  # its own account: the count is per account
    accounts.create_user(email, PASSWORD, "worker", org_code="guessed")
    token = _csrf_token(web)
    for _ in range(20):  # each from an address of its own: only the account's count grows
        wrong = web.post("/staff/login", data={"csrf_token": token, "email": email, "password": "guess"},
                         environ_base={"REMOTE_ADDR": _client_address()})
        assert wrong.status_code == 200
    locked = web.post("/staff/login", data={"csrf_token": token, "email": email, "password": PASSWORD},
                      environ_base={"REMOTE_ADDR": _client_address()})
    assert locked.status_code == 429
    other = web.post("/staff/login", data={"csrf_token": token, "email": f"x{email}", "password": "guess"},
                     environ_base={"REMOTE_ADDR": _client_address()})
    assert other.status_code == 200  # another account is not locked


def test_a_new_password_ends_the_sessions_made_with_the_old_one(probe, staff):
    accounts, _ = staff
    assert _log_in(probe).status_code == 302
    assert probe.get("/api/v1/_probe/whoami").get_json()["email"] == "li@example.cn"
    accounts.set_password("li@example.cn", "a brand new password")
    assert probe.get("/api/v1/_probe/whoami").get_json()["email"] is None


# -- public answers do not depend on the session ---------------------------------------------


def _varies_on_cookie(response) -> bool:
    return "cookie" in {v.strip().lower() for v in response.headers.get("Vary", "").split(",")}


def test_public_answers_neither_vary_on_nor_refresh_a_staff_session(web, staff):
    """A logged-in 站长's browser asks public questions too: their answers must be shareable by a
    cache (no "Vary: Cookie", no Set-Cookie), and the session must survive them."""
    assert _log_in(web).status_code == 302
    for path in ("/api/v1/meta", "/gbfs/gbfs.json", "/api/v1/stations/nearest?lat=27.83&lng=113.15",
                 "/open311/v2/services.json"):
        answer = web.get(path)
        assert answer.status_code == 200, path
        assert not _varies_on_cookie(answer), (path, answer.headers.get("Vary"))
        assert answer.headers.getlist("Set-Cookie") == [], path
    queue = web.get("/staff/")  # still logged in: the staff queue, not the login page
    assert queue.status_code == 200 and _varies_on_cookie(queue)
    assert _varies_on_cookie(web.get("/staff/login"))  # its form's CSRF token lives in the session


@pytest.mark.parametrize("hours_ago, still_in", [(11, True), (13, False)])
def test_a_session_cookie_ends_a_shift_after_it_was_written(web, staff, monkeypatch, hours_ago, still_in):
    """The signed cookie carries when it was written; after YIZHAN_STAFF_SESSION_HOURS (12 by
    default) a copy of it no longer logs anyone in, password unchanged or not."""
    import time

    from itsdangerous import TimestampSigner

    assert web.application.permanent_session_lifetime.total_seconds() == 12 * 3600
    with monkeypatch.context() as then:
        then.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - hours_ago * 3600)
        assert _log_in(web).status_code == 302
    queue = web.get("/staff/")
    if still_in:
        assert queue.status_code == 200
    else:
        assert queue.status_code == 302 and queue.headers["Location"].startswith("/staff/login")
