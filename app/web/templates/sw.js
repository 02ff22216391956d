/* Yizhan service worker (version {{ version }}).
 * Shell: hashed assets precached, cache-first. Pages: network first, cached copy offline.
 * API: network first; offline, the last answer for the same URL, marked with when it was fetched.
 * Tiles: only tiles the person actually viewed, capped (OSM tile usage policy). */
const VERSION = "{{ version }}";
const SHELL_CACHE = "yizhan-shell-" + VERSION;
const PAGE_CACHE = "yizhan-pages";
const API_CACHE = "yizhan-api";
const TILE_CACHE = "yizhan-tiles";
const TILE_LIMIT = 400;
const SHELL = {{ shell | safe }};

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key.startsWith("yizhan-shell-") && key !== SHELL_CACHE) await caches.delete(key);
    }
    await self.clients.claim();
  })());
});

async function networkFirst(request, cacheName, stamp) {
  const cache = await caches.open(cacheName);
  try {
    const response = await fetch(request);
    if (response.ok) {
      const headers = new Headers(response.headers);
      headers.set("X-Yizhan-Fetched-At", new Date().toISOString());
      const body = await response.clone().blob();
      await cache.put(request, new Response(body, { status: response.status, headers }));
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
      const page = await cache.match("/", { ignoreSearch: true });
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
  if (response.ok || response.type === "opaque") {
    await cache.put(request, response.clone());
    const keys = await cache.keys();
    for (let i = 0; i < keys.length - TILE_LIMIT; i++) await cache.delete(keys[i]);
  }
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin === self.location.origin) {
    if (url.pathname.startsWith("/a/")) {
      event.respondWith(caches.match(request).then((hit) => hit || fetch(request)));
    } else if (url.pathname.startsWith("/api/v1/wechat/")) {
      return;  // signatures are per page and time: never cached
    } else if (url.pathname.startsWith("/api/")) {
      event.respondWith(networkFirst(request, API_CACHE, true));
    } else if (request.mode === "navigate") {
      event.respondWith(networkFirst(request, PAGE_CACHE, false));
    }
  } else if (request.destination === "image") {
    event.respondWith(tile(request));
  }
});
