"""deploy/nginx/yizhan.conf for real: Debian's nginx with this site (its ports, paths and certificate
swapped for a temporary directory's and a self-signed one) in front of gunicorn with
deploy/gunicorn.conf.py, on a PostGIS database of its own."""
from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import os
import re
import ssl
import subprocess
import time

import pytest

from tests.helpers import own_postgis_database
from tests.served import NEAREST, ROOT, dispose, free_port, get, gunicorn, migrated_with_world, tmpdir

NGINX = "/usr/sbin/nginx"
SITE = os.path.join(ROOT, "deploy", "nginx", "yizhan.conf")
NAME = "yizhan.example.gov.cn"
YEAR = 365 * 24 * 3600


def _render_site(prefix: str, upstream: int, http_port: int, https_port: int) -> str:
    """The site file with only what differs on this machine replaced; each replaced text must be
    there (so the test follows the file, never a copy of it)."""
    site = open(SITE).read()
    swaps = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;\n": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;\n": "",
        f"/etc/letsencrypt/live/{NAME}/fullchain.pem": f"{prefix}/cert.pem",
        f"/etc/letsencrypt/live/{NAME}/privkey.pem": f"{prefix}/key.pem",
        "/var/cache/nginx/yizhan": f"{prefix}/cache",
        "/var/www/html": f"{prefix}/www",
        f"server_name {NAME};": "server_name localhost;",
    }
    for old, new in swaps.items():
        assert old in site, old
        site = site.replace(old, new)
    return site


def _main_conf(prefix: str) -> str:
    """nginx.conf around the site, as Debian's includes sites-enabled inside http {}."""
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers must read the temporary directory
    temp = "".join(f"{kind}_temp_path {prefix}/tmp/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\ninclude /etc/nginx/mime.types;\naccess_log {prefix}/access.log;\n{temp}"
            f"include {prefix}/yizhan.conf;\n}}\n")


@contextlib.contextmanager
def _nginx(upstream: int):
    prefix = tmpdir("nginx")
    for sub in ("tmp", "cache", "www"):
        os.makedirs(os.path.join(prefix, sub))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", f"{prefix}/key.pem", "-out", f"{prefix}/cert.pem"],
                   check=True, capture_output=True, timeout=60)
    http_port, https_port = free_port(), free_port()
    with open(f"{prefix}/yizhan.conf", "w") as f:
        f.write(_render_site(prefix, upstream, http_port, https_port))
    conf = f"{prefix}/nginx.conf"
    with open(conf, "w") as f:
        f.write(_main_conf(prefix))
    checked = subprocess.run([NGINX, "-t", "-p", prefix, "-c", conf], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    server = subprocess.Popen([NGINX, "-p", prefix, "-c", conf, "-g", "daemon off;"],
                              stdout=subprocess.DEVNULL, stderr=open(f"{prefix}/stderr.log", "w"))
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, open(f"{prefix}/error.log").read()
            with contextlib.suppress(OSError):
                if get(http_port, "/")[0] == 301:
                    break
            assert time.monotonic() < deadline, "nginx did not answer within 30 s"
            time.sleep(0.1)
        yield http_port, https_port
    finally:
        server.terminate()
        server.wait(timeout=30)


def _curl(url: str, *args: str):
    """(status, headers with lower-case names, body, HTTP version) through curl, certificate unchecked."""
    out = tmpdir("curl")
    result = subprocess.run(["curl", "-sk", "--http2", "-D", f"{out}/h", "-o", f"{out}/b", "-w", "%{http_version}",
                             *args, url], capture_output=True, text=True, timeout=60, check=True)
    lines = open(f"{out}/h").read().splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers, open(f"{out}/b", "rb").read(), result.stdout


@pytest.fixture(scope="module")
def site(apps):
    url = own_postgis_database(apps, "nginx")
    dispose(migrated_with_world(url, tmpdir("nginx-uploads")))
    env = {"DATABASE_URL": url, "YIZHAN_PROXY_HOPS": "1", "YIZHAN_SECRET_KEY": "nginx-test",
           # The app's rate-limit counters in its own memory, away from other tests' in Redis; one
           # worker, so that memory is the only count.
           "RATELIMIT_STORAGE_URI": "memory://", "WEB_CONCURRENCY": "1"}
    with gunicorn(env, os.path.join(tmpdir("nginx-gunicorn"), "gunicorn.log")) as (upstream, _), \
            _nginx(upstream) as (http_port, https_port):
        yield {"upstream": upstream, "http": f"http://127.0.0.1:{http_port}",
               "https": f"https://127.0.0.1:{https_port}", "https_port": https_port}


def test_https_http2_serves_the_page_uncached(site):
    status, headers, body, version = _curl(site["https"] + "/")
    assert (status, version) == (200, "2")
    assert headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "no-cache"
    assert b"/a/" in body


def test_http_redirects_to_https_on_the_configured_name(site):
    status, headers, _, _ = _curl(site["http"] + "/s/1?lang=en", "-H", "Host: evil.example")
    assert status == 301
    assert headers["location"] == "https://localhost/s/1?lang=en"


def test_fingerprinted_assets_are_kept_for_a_year(site):
    page = _curl(site["https"] + "/")[2].decode()
    assets = sorted(set(re.findall(r'/a/[0-9a-f]+/[^"\'\s>]+', page)))
    assert assets
    for path in assets:
        status, headers, _, _ = _curl(site["https"] + path)
        assert status == 200, path
        assert headers["cache-control"] == f"public, max-age={YEAR}, immutable", path


def test_json_travels_gzipped_and_answers_as_gunicorn_does(site):
    status, headers, body, _ = _curl(site["https"] + NEAREST, "-H", "Accept-Encoding: gzip")
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith("application/json")
    direct = json.loads(get(site["upstream"], NEAREST)[2])
    proxied = json.loads(gzip.decompress(body))
    assert direct["results"] and proxied["results"] == direct["results"]


def test_metrics_are_not_served_to_the_internet(site):
    """Whatever the app does with /metrics (it is for the monitoring host), nginx never passes it on."""
    status, _, body, _ = _curl(site["https"] + "/metrics")
    assert status == 404 and b"nginx" in body


def test_a_body_larger_than_the_app_takes_gets_413_from_nginx(site):
    """client_max_body_size equals the app's MAX_CONTENT_LENGTH (31 MB): one byte more is refused
    from the Content-Length alone, before a worker sees it."""
    conn = http.client.HTTPSConnection("127.0.0.1", site["https_port"], timeout=30,
                                       context=ssl._create_unverified_context())
    try:
        conn.putrequest("POST", "/s/1/report")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(31 * 1024 * 1024 + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        assert b"nginx" in response.read()
    finally:
        conn.close()


def test_form_posts_meet_nginx_limit_after_the_apps(site):
    """60 login POSTs from one address at once: the app refuses first (its limit is 10 a minute),
    and nginx's looser second line (30 a minute, burst 20) turns away the rest of the flood."""
    jar = os.path.join(tmpdir("cookies"), "jar")
    page = _curl(site["https"] + "/staff/login", "-c", jar)[2].decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    post = ("-b", jar, "-e", site["https"] + "/staff/login", "-X", "POST",  # -e: Referer, which CSRF checks
            "-d", f"email=a%40b.cn&password=wrong&csrf_token={token}")
    answers = [_curl(site["https"] + "/staff/login", *post) for _ in range(60)]
    statuses = [a[0] for a in answers]
    from_nginx = [i for i, a in enumerate(answers) if a[0] == 429 and b"nginx" in a[2]]
    from_app = [i for i, a in enumerate(answers) if a[0] == 429 and b"nginx" not in a[2]]
    assert statuses[0] == 200  # the login page again, saying the password was wrong
    assert from_app and from_nginx and min(from_app) < min(from_nginx), statuses
