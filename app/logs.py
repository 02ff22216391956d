"""Access logs without secrets: reporters' tracking tokens travel in URL paths (/r/<token>, and
Open311's tokens/<token>.json), and a log must not turn into a list of working links.

Run gunicorn with ``--logger-class app.logs.AccessLogger`` (``make run`` does).
"""
from __future__ import annotations

import re

from gunicorn.glogging import Logger

# Path segments that are secrets: what follows these prefixes, up to the next '/', '?' or '.'.
SECRET_PATHS = re.compile(r"(/r/|/open311/v2/tokens/)[^/?\s.]+")


def redact(text: str) -> str:
    return SECRET_PATHS.sub(r"\1…", text)


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        # Every text atom: the path also reaches the log as environ and header atoms ({raw_uri}e, ...).
        return {name: redact(value) if isinstance(value, str) else value
                for name, value in super().atoms(resp, req, environ, request_time).items()}
