/* Offline queue of the centre pages (docs/offline.md). It only keeps, sends and shows entries:
   every rule (stock, sessions, who may do what) is checked by the server when an entry arrives.

   - An entry made while the server, the network or the database is down is kept in IndexedDB
     with the client id its form carried when it was made; the form gets a new client id.
   - While entries wait, new ones join the queue too, so the server gets them in the order made.
   - The queue goes to POST /sync/entries in order; an entry leaves the queue only when the server
     answers recorded or duplicate. Refused ones stay, with the reason, until corrected or dropped.
   - No answer, 5xx, 503 (database down): keep everything and retry with back-off. */
(function () {
  "use strict";

  var DB_NAME = "coldchain-offline", BATCH = 10, MAX_BACKOFF_MS = 10000;
  var T = {}, dbPromise = null, syncing = false, timer = null, backoffMs = 0;
  var serverDown = false, waitingCount = 0, retryAfterMs = 0;

  function text(key, values) {
    var s = T[key] || key;
    Object.keys(values || {}).forEach(function (k) { s = s.split("%(" + k + ")s").join(values[k]); });
    return s;
  }

  // --- IndexedDB ---------------------------------------------------------------------------
  function db() {
    if (!dbPromise) {
      dbPromise = new Promise(function (resolve, reject) {
        var open = indexedDB.open(DB_NAME, 1);
        open.onupgradeneeded = function () {
          open.result.createObjectStore("entries", { keyPath: "seq", autoIncrement: true });
          open.result.createObjectStore("reference", { keyPath: "store_id" });
        };
        open.onsuccess = function () { resolve(open.result); };
        open.onerror = function () { reject(open.error); };
      });
    }
    return dbPromise;
  }

  function run(name, mode, fn) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var t = d.transaction(name, mode), request = fn(t.objectStore(name));
        t.oncomplete = function () { resolve(request ? request.result : undefined); };
        t.onerror = t.onabort = function () { reject(t.error); };
      });
    });
  }

  function allEntries() { return run("entries", "readonly", function (s) { return s.getAll(); }); }
  function putEntry(e) { return run("entries", "readwrite", function (s) { return s.put(e); }); }
  function deleteEntry(seq) { return run("entries", "readwrite", function (s) { return s.delete(seq); }); }

  function removeRefused(clientId) {
    return allEntries().then(function (entries) {
      return Promise.all(entries.filter(function (e) {
        return e.state === "refused" && e.client_id === clientId;
      }).map(function (e) { return deleteEntry(e.seq); }));
    });
  }

  // --- making an entry ---------------------------------------------------------------------
  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  function queueable(form) {
    return form && form.tagName === "FORM" && form.getAttribute("data-queue") === "true" &&
      document.querySelector("[data-offline-store]") !== null;
  }

  function renewClientId(form) {
    var field = form.querySelector("input[name=client_id]");
    if (field) { field.value = newId(); }
  }

  function summary(form) {
    var parts = [];
    form.querySelectorAll("select, input[type=number], input[type=text]").forEach(function (field) {
      if (!field.value || !field.labels || !field.labels.length) { return; }
      var value = field.tagName === "SELECT" ? field.options[field.selectedIndex].text : field.value;
      parts.push(field.labels[0].textContent.replace("*", "").trim() + ": " + value.trim());
    });
    return parts.join(" · ");
  }

  function snapshot(form) {
    var fields = {};
    new FormData(form).forEach(function (value, key) {
      if (typeof value === "string" && key !== "csrf_token") { fields[key] = value; }
    });
    var section = form.closest("article, section") || form;
    var heading = section.querySelector("h2, h3") || document.querySelector("h1");
    return {
      client_id: fields.client_id, fields: fields, page: location.pathname,
      action: new URL(form.getAttribute("action"), location.href).pathname,
      label: heading ? heading.textContent.trim() : "", summary: summary(form),
      made_at: new Date().toISOString(), state: "waiting", reason: ""
    };
  }

  function note(form, message) {
    var holder = form.querySelector(".queued-note");
    if (!holder) {
      holder = document.createElement("p");
      holder.className = "queued-note";
      holder.setAttribute("role", "status");
      form.insertBefore(holder, form.querySelector("button[type=submit]"));
    }
    holder.textContent = message;
  }

  function queueForm(form) {
    var entry = snapshot(form);
    if (!entry.client_id) { return Promise.resolve(); }
    waitingCount += 1;
    return removeRefused(entry.client_id)
      .then(function () { return run("entries", "readwrite", function (s) { return s.add(entry); }); })
      .then(function () {
        // Only once the entry is stored does the form get a new client id for the next one.
        renewClientId(form);
        note(form, text("saved"));
        refresh();
        schedule(0);
      });
  }

  // --- sending the queue -------------------------------------------------------------------
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; }
    catch (e) { return ""; }
  }

  function schedule(delayMs) {
    clearTimeout(timer);
    timer = setTimeout(syncNow, delayMs);
  }

  function setServer(up, message) {
    serverDown = !up;
    status(message || "");
  }

  function settle(batch, results) {
    var byId = {};
    (results || []).forEach(function (r) { byId[r.client_id] = r; });
    return batch.reduce(function (done, entry) {
      return done.then(function () {
        var r = byId[entry.client_id];
        if (!r) { return undefined; }
        if (r.status === "recorded" || r.status === "duplicate") { return deleteEntry(entry.seq); }
        entry.state = "refused";
        entry.reason = r.reason || "";
        entry.errors = r.errors || {};
        return putEntry(entry);
      });
    }, Promise.resolve()).then(function () { return "sent"; });
  }

  function send(batch) {
    // made_at and this clock's time now let the server date each entry when it was made, even
    // when this device's clock is wrong (it takes the entry's age, not its time).
    var body = JSON.stringify({ sent_at: new Date().toISOString(), entries: batch.map(function (e) {
      return { client_id: e.client_id, action: e.action, fields: e.fields, made_at: e.made_at };
    }) });
    var abort = window.AbortController ? new AbortController() : null;
    if (abort) { setTimeout(function () { abort.abort(); }, 30000); }  // a hung link counts as down
    return fetch("/sync/entries", {
      method: "POST", credentials: "same-origin", body: body, signal: abort ? abort.signal : undefined,
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrf() }
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.ok && type.indexOf("application/json") === 0) {
        return response.json().then(function (answer) {
          setServer(true);
          return settle(batch, answer.results);
        });
      }
      if (response.status >= 500 || response.status === 429) {
        retryAfterMs = 1000 * (parseInt(response.headers.get("Retry-After"), 10) || 0);
        setServer(false, text("down"));
        return "retry";
      }
      // The login has ended or the page's CSRF token is stale: keep the entries.
      setServer(true, text("signin"));
      return "retry";
    }, function () {
      setServer(false, text("down"));
      return "retry";
    });
  }

  function step() {
    return allEntries().then(function (entries) {
      var waiting = entries.filter(function (e) { return e.state === "waiting"; });
      if (!waiting.length) { return "idle"; }
      return send(waiting.slice(0, BATCH)).then(function (outcome) {
        return outcome === "sent" ? step() : outcome;
      });
    });
  }

  function syncNow() {
    if (syncing) { return; }
    syncing = true;
    clearTimeout(timer);
    step().then(function (outcome) {
      syncing = false;
      refresh();
      if (outcome === "idle") { backoffMs = 0; return; }
      backoffMs = Math.min(backoffMs ? backoffMs * 2 : 500, MAX_BACKOFF_MS);
      schedule(Math.max(retryAfterMs, backoffMs + Math.floor(Math.random() * 250)));
      retryAfterMs = 0;
    }, function () {
      syncing = false;
      schedule(MAX_BACKOFF_MS);
    });
  }

  // --- showing the queue -------------------------------------------------------------------
  function status(message) {
    var line = document.getElementById("offline-server");
    if (line) { line.textContent = message; }
  }

  function button(label, action, entry) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = label;
    b.setAttribute("aria-label", label + ": " + entry.label + " " + entry.summary);
    b.addEventListener("click", function () { action(entry); });
    return b;
  }

  function correct(entry) {
    var forms = Array.prototype.filter.call(document.querySelectorAll("form[data-queue=true]"),
      function (f) { return new URL(f.getAttribute("action"), location.href).pathname === entry.action; });
    if (!forms.length) { location.assign(entry.page); return; }
    var form = forms[0];
    Object.keys(entry.fields).forEach(function (name) {
      var field = form.elements.namedItem(name);
      if (field && field.value !== undefined) { field.value = entry.fields[name]; }
    });
    note(form, text("refused", { reason: entry.reason }));
    var first = form.querySelector("select, input:not([type=hidden])");
    if (first) { first.focus(); }
  }

  function resend(entry) {
    entry.state = "waiting";
    entry.reason = "";
    putEntry(entry).then(function () { refresh(); schedule(0); });
  }

  function drop(entry) { deleteEntry(entry.seq).then(refresh); }

  function item(entry) {
    var li = document.createElement("li");
    li.setAttribute("data-client-id", entry.client_id);
    li.setAttribute("data-state", entry.state);
    var what = document.createElement("span");
    what.textContent = entry.label + " — " + entry.summary + " (" +
      text("made", { time: new Date(entry.made_at).toLocaleTimeString() }) + ")";
    li.appendChild(what);
    var state = document.createElement("strong");
    state.textContent = entry.state === "refused" ? text("refused", { reason: entry.reason })
      : text("waiting_one");
    li.appendChild(document.createTextNode(" "));
    li.appendChild(state);
    if (entry.state === "refused") {
      li.className = "refused";
      li.appendChild(button(text("correct"), correct, entry));
      li.appendChild(button(text("resend"), resend, entry));
      li.appendChild(button(text("drop"), drop, entry));
    }
    return li;
  }

  function refresh() {
    var panel = document.getElementById("offline-queue");
    if (!panel) { return Promise.resolve(); }
    return allEntries().then(function (entries) {
      var waiting = entries.filter(function (e) { return e.state === "waiting"; });
      var refused = entries.filter(function (e) { return e.state === "refused"; });
      waitingCount = waiting.length;
      panel.hidden = !entries.length && !serverDown;
      document.getElementById("offline-count").textContent =
        text("waiting", { n: waiting.length }) + (refused.length ? " " + text("refused_count", { n: refused.length }) : "");
      var list = document.getElementById("offline-list");
      list.textContent = "";
      entries.forEach(function (e) { list.appendChild(item(e)); });
    });
  }

  // --- the centre's reference data -----------------------------------------------------------
  function reference() {
    var holder = document.querySelector("[data-offline-store]");
    if (!holder) { return; }
    var storeId = parseInt(holder.getAttribute("data-offline-store"), 10);
    var shown = document.getElementById("offline-data");
    function show(data) {
      if (shown && data) { shown.textContent = text("data_at", { time: new Date(data.fetched_at).toLocaleString() }); }
    }
    fetch("/centres/" + storeId + "/offline-data", { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok || (r.headers.get("Content-Type") || "").indexOf("application/json") !== 0) { throw new Error("no data"); }
        return r.json();
      })
      .then(function (data) {
        return run("reference", "readwrite", function (s) { return s.put(data); }).then(function () { show(data); });
      })
      .catch(function () {
        run("reference", "readonly", function (s) { return s.get(storeId); }).then(show);
      });
  }

  // --- hooks ---------------------------------------------------------------------------------
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!queueable(form)) { return; }
    if (serverDown || waitingCount > 0) {
      // Keep the order: this entry goes after those already waiting.
      event.preventDefault();
      queueForm(form);
    }
  });

  function failed(event) {
    var form = (event.detail.requestConfig || {}).elt || event.detail.elt, xhr = event.detail.xhr;
    if (!queueable(form)) { return; }
    if (event.type === "htmx:responseError" && xhr && xhr.status > 0 && xhr.status < 500) { return; }
    serverDown = true;
    status(text("down"));
    queueForm(form);
  }
  document.addEventListener("htmx:sendError", failed);
  document.addEventListener("htmx:responseError", failed);

  // Before the swap: the form that was sent is still in the page (afterwards it is detached).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig || {}, xhr = event.detail.xhr;
    var form = config.elt || event.detail.elt;
    if (!queueable(form) || !xhr || xhr.status < 200 || xhr.status >= 300) { return; }
    serverDown = false;
    var field = form.querySelector("input[name=client_id]");
    if (field && field.value) { removeRefused(field.value).then(refresh); }
  });

  // A boosted form (the end-of-session report) swaps the whole body: show the queue again.
  document.addEventListener("htmx:afterSettle", function () { refresh(); });
  window.addEventListener("online", function () { schedule(0); });

  document.addEventListener("DOMContentLoaded", function () {
    var strings = document.getElementById("offline-strings");
    if (!strings || !window.indexedDB) { return; }
    T = JSON.parse(strings.textContent);
    // A page may come from the worker's cache: each form gets a client id of its own again.
    document.querySelectorAll("form[data-queue=true]").forEach(renewClientId);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(function () {
        return navigator.serviceWorker.ready;
      }).then(function (registration) {
        if (!registration.active) { return; }
        if (!navigator.serviceWorker.controller) { registration.active.postMessage("claim"); }
        if (navigator.onLine) {
          registration.active.postMessage({ keep: location.pathname + location.search });
        }
      }).catch(function () { return null; });
    }
    reference();
    refresh().then(function () { schedule(0); });
  });
})();
