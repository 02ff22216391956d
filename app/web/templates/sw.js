/* Yizhan service worker (version {{ version }}).
 * Shell: hashed assets and the start page precached, cache-first. Pages: network first, a
 * cached copy offline (pages cached under an older release are dropped, since they name
 * asset hashes that are gone). API: network first; offline, the last answer for the same
 * URL, marked with when it was fetched; a few dozen answers at most. Staff pages, tracking
 * links, report forms and photos never go through the caches (nor does anything no-store).
 * Tiles: only tiles the person actually viewed, only good (CORS, 200) ones, capped
 * (OSM tile usage policy). */
const VERSION = "{{ version }}";
const SHELL_CACHE = "yizhan-shell-" + VERSION;
const PAGE_CACHE = "yizhan-pages";
const API_CACHE = "yizhan-api";
const TILE_CACHE = "yizhan-tiles";
const TILE_LIMIT = 400;
const API_LIMIT = 40;
const PAGE_LIMIT = 20;
const SHELL = {{ shell | safe }};
const PRIVATE = /^\/(staff|r|media|open311)\/|^\/api\/v1\/ops\/|^\/s\/[^/]+\/report$/;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL.concat(["/"]))).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("yizhan-shell-") && key !== SHELL_CACHE) await caches.delete(key);
    }
    const version = await caches.open(SHELL_CACHE).then((c) => c.match("/__pages_version"));
    if (!version) {  // a new release: old pages name old asset hashes
      await caches.delete(PAGE_CACHE);
      await caches.open(SHELL_CACHE).then((c) => c.put("/__pages_version", new Response(VERSION)));
    }
    await self.clients.claim();
  })());
});

async function trim(cache, limit) {
  const keys = await cache.keys();
  for (let i = 0; i < keys.length - limit; i++) await cache.delete(keys[i]);
}

async function networkFirst(request, cacheName, stamp, limit) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    // What the server says not to store (staff pages, tracking links, forms with a CSRF token)
    // is not stored here either.
    if (response.ok && !/no-store/i.test(response.headers.get("Cache-Control") || "")) {
      const headers = new Headers(response.headers);
      headers.set("X-Yizhan-Fetched-At", new Date().toISOString());
      const body = await response.clone().blob();
      try {
        await cache.put(request, new Response(body, { status: response.status, headers }));
        await trim(cache, limit);
      } catch (e) { /* storage full: the answer still goes to the page */ }
    }
    return response;
  } catch (err) {
    const cached = await cache.match(request);
    if (cached) {
      if (!stamp) return cached;
      const headers = new Headers(cached.headers);
      headers.set("X-Yizhan-Offline", "1");
      return new Response(await cached.blob(), { status: 200, headers });
    }
    if (request.mode === "navigate") {
      const page = await caches.match("/", { ignoreSearch: true, cacheName: SHELL_CACHE });
      if (page) return page;
    }
    throw err;
  }
}

async function tile(request) {
  const cache = await caches.open(TILE_CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  // Opaque (no-CORS) tiles cannot be checked, and count as megabytes against storage: not kept.
  if (response.ok) {
    try {
      await cache.put(request, response.clone());
      await trim(cache, TILE_LIMIT);
    } catch (e) { /* storage full: show the tile anyway */ }
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin === self.location.origin) {
    if (PRIVATE.test(url.pathname)) {
      return;  // staff work, tracking links, report forms and photos: the network only
    } else if (url.pathname.startsWith("/a/")) {
      event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
    } else if (url.pathname.startsWith("/api/v1/wechat/")) {
      return;  // signatures are per page and time: never cached
    } else if (url.pathname === "/api/v1/search") {
      return;  // suggestions, one per keystroke: kept, they would push the answers worth keeping out
    } else if (url.pathname.startsWith("/api/")) {
      event.respondWith(networkFirst(request, API_CACHE, true, API_LIMIT));
    } else if (request.mode === "navigate") {
      event.respondWith(networkFirst(request, PAGE_CACHE, false, PAGE_LIMIT));
    }
  } else if (request.destination === "image") {
    event.respondWith(tile(request));
  }
});
