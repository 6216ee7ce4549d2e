// The page's service worker (scope /): after one visit the page, ONNX Runtime Web and the model come from
// this browser's cache, so device mode works offline. Files under a content-hash URL (page/ort/<hash>/...,
// v1/device/<hash>/...) never change: cache first. The page's own files and the manifest: network first, the
// cached copy when the network fails. Nothing else (the API) is touched.
const CACHE = "lnrnn-page-v1";
const SHELL = ["./", "page/page.js", "page/page.css", "page/lnrnn.js", "page/complete.js"];
const HASHED = /\/(page\/ort|v1\/device)\/[0-9a-f]{16}\/[^/]+$/;
const FRESH = /\/(page\/(page\.js|page\.css|lnrnn\.js|complete\.js)|v1\/device)$/;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((path) => new URL(path, self.registration.scope))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("lnrnn-page-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) {
      await cache.put(key, response.clone());
      if (key.pathname.endsWith("/v1/device")) await forgetOthers(cache, await response.clone().json());
    }
    return response;
  } catch (err) {
    const hit = await cache.match(key);
    if (hit) return hit;
    throw err;
  }
}

// A new manifest: drop hashed files it no longer names (an older model or runtime).
async function forgetOthers(cache, manifest) {
  const scope = new URL(self.registration.scope);
  const keep = new Set([manifest.model.url, manifest.runtime?.module.url, manifest.runtime?.wasm.url]
    .filter(Boolean).map((u) => new URL(u, scope).href));
  for (const request of await cache.keys()) {
    if (HASHED.test(new URL(request.url).pathname) && !keep.has(request.url)) await cache.delete(request);
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  if (HASHED.test(url.pathname)) {
    event.respondWith(cacheFirst(request));
  } else if (request.mode === "navigate" && url.pathname === new URL(self.registration.scope).pathname) {
    event.respondWith(networkFirst(request, new URL(self.registration.scope)));
  } else if (FRESH.test(url.pathname)) {
    event.respondWith(networkFirst(request, new URL(url.pathname, url.origin)));
  }
});
