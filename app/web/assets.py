"""Content-hashed URLs for static files.

WeChat's in-app browser caches hard. Every asset is served at /a/<hash>/<path>,
where the hash is of its content, with a year-long immutable cache; the HTML
(served no-cache) names the current hashes, so a release reaches users on their
next page load, and the service worker precaches exactly this set.
"""
from __future__ import annotations

import hashlib
import json
import os

SHELL = (
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/markercluster/leaflet.markercluster.js",
    "vendor/markercluster/MarkerCluster.css",
    "vendor/markercluster/MarkerCluster.Default.css",
    "app/app.js",
    "app/app.css",
    "i18n/zh-CN.json",
    "i18n/en.json",
    "icons/icon.svg",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "icons/icon-maskable-512.png",
)


class Assets:
    def __init__(self, static_dir: str, names=SHELL):
        self.static_dir = static_dir
        self.digests: dict[str, str] = {}
        whole = hashlib.sha256()
        for name in names:
            with open(os.path.join(static_dir, name), "rb") as fh:
                data = fh.read()
            digest = hashlib.sha256(data).hexdigest()[:12]
            self.digests[name] = digest
            whole.update(name.encode() + digest.encode())
        # One version for the whole shell: names the service worker's cache.
        self.version = whole.hexdigest()[:12]
        self._catalogs: dict[str, dict] = {}
        self._bytes: dict[str, bytes] = {}

    def url(self, name: str) -> str:
        return f"/a/{self.digests[name]}/{name}"

    def read_text(self, name: str) -> str:
        with open(os.path.join(self.static_dir, name), encoding="utf-8") as fh:
            return fh.read()

    def read_bytes(self, name: str) -> bytes:
        if name not in self._bytes:
            with open(os.path.join(self.static_dir, name), "rb") as fh:
                self._bytes[name] = fh.read()
        return self._bytes[name]

    def messages(self, lang: str) -> dict:
        """The message catalog for ``lang`` (read once)."""
        if lang not in self._catalogs:
            self._catalogs[lang] = json.loads(self.read_text(f"i18n/{lang}.json"))
        return self._catalogs[lang]

    def urls(self) -> list[str]:
        return [self.url(name) for name in self.digests]
