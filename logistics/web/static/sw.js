/* Service worker of the pages (served at /sw.js so its scope is the whole site).
   The app shell (CSS, JS) is cached at install; pages are fetched from the network first and the
   last copy of each is kept, so a centre's pages open when the server or the network is down.
   Writes never pass through here: queued entries are sent by offline.js (docs/offline.md). */
"use strict";

var SHELL = "coldchain-shell-v5";
var PAGES = "coldchain-pages-v1";
var ASSETS = ["/assets/app.css", "/assets/app.js", "/assets/offline.js", "/assets/vendor/htmx.min.js"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) { return cache.addAll(ASSETS); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== SHELL && n !== PAGES; })
      .map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

// A page that opened while the worker was installing is not controlled yet: it asks to be.
// A page asks for its own copy to be kept (it may have loaded before the worker controlled it).
self.addEventListener("message", function (event) {
  if (event.data === "claim") { event.waitUntil(self.clients.claim()); return; }
  if (event.data && event.data.keep) {
    var url = new URL(event.data.keep, self.location.origin);
    if (url.origin !== self.location.origin) { return; }
    event.waitUntil(fetch(url.href, { credentials: "same-origin" }).then(function (response) {
      return keep(url.href, response);
    }).catch(function () { return undefined; }));
  }
});

// Keep a page only once its whole body has arrived: a put fed by a stream that breaks (the
// server stopping mid-answer) must never take the place of the good copy kept before.
function keep(url, response) {
  if (!response.ok || response.redirected) { return Promise.resolve(); }
  var headers = new Headers(response.headers);
  headers.delete("Vary");
  return response.blob().then(function (body) {
    var copy = new Response(body, { status: response.status, headers: headers });
    return caches.open(PAGES).then(function (cache) { return cache.put(url, copy); });
  });
}

function offlinePage() {
  return new Response("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Offline</title>" +
    "<main><h1>Offline</h1><p>This page was not opened before while online.</p></main></html>",
    { status: 503, headers: { "Content-Type": "text/html; charset=utf-8" } });
}

// Network first; a 5xx (database down) or no answer falls back to the last copy kept.
function page(request) {
  return fetch(request).then(function (response) {
    if (response.status >= 500) { throw new Error("server error " + response.status); }
    keep(request.url, response.clone()).catch(function () { return undefined; });
    return response;
  }).catch(function () {
    return caches.match(request, { ignoreVary: true, ignoreSearch: false }).then(function (hit) {
      return hit || offlinePage();
    });
  });
}

function asset(request) {
  return caches.match(request, { ignoreVary: true }).then(function (hit) {
    return hit || fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(SHELL).then(function (cache) { cache.put(request, copy); });
      }
      return response;
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request, url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  if (url.pathname.indexOf("/api/") === 0 || url.pathname.indexOf("/offline-data") > 0 ||
      url.pathname === "/sw.js") { return; }
  if (url.pathname.indexOf("/assets/") === 0) { event.respondWith(asset(request)); return; }
  if (request.mode === "navigate") { event.respondWith(page(request)); }
});
