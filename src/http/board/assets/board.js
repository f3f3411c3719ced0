// incidentd board: local times, live clocks, keyboard navigation and live
// updates from the event stream (/api/v1/events). Plain JavaScript, no
// dependencies; the pages work without it (times then show in UTC).
(function () {
  "use strict";
  var pad = function (n) { return n < 10 ? "0" + n : "" + n; };
  function localTime(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function utcTitle(d) { return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC"); }
  function span(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + "s";
    var m = Math.floor(s / 60); if (m < 60) return m + "m";
    var h = Math.floor(m / 60); if (h < 48) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function refreshTimes(root) {
    var now = Date.now();
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.textContent = localTime(d);
      t.title = utcTitle(d);
    });
    root.querySelectorAll("[data-since]").forEach(function (e) {
      var d = new Date(e.getAttribute("data-since"));
      if (isNaN(d)) return;
      e.textContent = span(now - d);
      e.title = utcTitle(d);
    });
    root.querySelectorAll("[data-deadline]").forEach(function (e) {
      var d = new Date(e.getAttribute("data-deadline"));
      if (isNaN(d)) return;
      var what = e.getAttribute("data-what") || "";
      var left = d - now;
      if (left >= 0 && !e.classList.contains("breached")) {
        e.textContent = span(left) + " to " + what;
      } else {
        e.classList.add("breached");
        e.textContent = what + " SLA breached " + span(-left) + " ago";
      }
      e.title = what + " by " + utcTitle(d);
    });
  }

  // Who acts, when the board runs without tokens: remembered in this browser.
  function names() {
    var input = document.getElementById("byname");
    if (!input) return;
    var saved = "";
    try { saved = localStorage.getItem("incidentd.name") || ""; } catch (e) { /* private mode */ }
    input.value = saved;
    var fill = function () {
      document.querySelectorAll("input.by").forEach(function (b) { b.value = input.value; });
    };
    input.addEventListener("input", function () {
      try { localStorage.setItem("incidentd.name", input.value); } catch (e) { /* ignore */ }
      fill();
    });
    document.addEventListener("submit", fill, true);
    fill();
  }

  // j/k move through incident rows, Enter opens, / searches, g and s go to pages.
  var current = -1;
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.row")); }
  function select(i) {
    var r = rows(); if (!r.length) return;
    current = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (x) { x.classList.remove("current"); });
    r[current].classList.add("current");
    var a = r[current].querySelector("a"); if (a) a.focus();
  }
  document.addEventListener("keydown", function (ev) {
    var tag = (ev.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "j") { select(current + 1); ev.preventDefault(); }
    else if (ev.key === "k") { select(current - 1); ev.preventDefault(); }
    else if (ev.key === "/") { var s = document.getElementById("search"); if (s) { s.focus(); ev.preventDefault(); } }
    else if (ev.key === "g") { location.href = "/"; }
    else if (ev.key === "s") { location.href = "/silences"; }
  });
  document.addEventListener("click", function (ev) {
    var tr = ev.target.closest && ev.target.closest("tr.row");
    if (tr && !ev.target.closest("a, button, form")) location.href = tr.getAttribute("data-href");
  });

  // The new-incident form: "began at" is typed in local time; send it as
  // an instant (without JavaScript the server reads it as UTC).
  var incidentForm = document.getElementById("incident-form");
  if (incidentForm) {
    incidentForm.addEventListener("submit", function () {
      var local = document.getElementById("occurred_at_local");
      var exact = document.getElementById("occurred_at");
      if (!local || !exact) return;
      var d = local.value ? new Date(local.value) : null;
      exact.value = d && !isNaN(d.getTime()) ? d.toISOString() : "";
    });
  }

  // Live updates: on any event, fetch this page again and swap #live.
  function live() {
    if (!document.body.hasAttribute("data-live") || !window.EventSource) return;
    var badge = document.getElementById("stream");
    var mine = document.body.getAttribute("data-incident");
    var pending = null;
    var reload = function () {
      pending = null;
      fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("live"), old = document.getElementById("live");
          if (!fresh || !old) return;
          old.replaceWith(document.importNode(fresh, true));
          // The incident page's other sections: alerts, timeline, and the
          // actions unless someone is typing in them.
          ["h-alerts", "timeline", "h-actions"].forEach(function (id) {
            var a = doc.getElementById(id), b = document.getElementById(id);
            var section = b && b.closest("section");
            var fresh = a && a.closest("section");
            if (!section || !fresh) return;
            // Alerts ticked for a split stay ticked.
            if (id === "h-alerts" && section.querySelector("input[type=checkbox]:checked")) return;
            if (id === "h-actions") {
              var busy = section.contains(document.activeElement) ||
                Array.prototype.some.call(section.querySelectorAll("input[type=text], textarea"),
                  function (x) { return x.value !== ""; }) ||
                Array.prototype.some.call(section.querySelectorAll("select"), function (x) {
                  var first = 0;
                  Array.prototype.forEach.call(x.options, function (o, i) { if (o.defaultSelected) first = i; });
                  return x.selectedIndex !== first;
                });
              if (busy) return;
            }
            section.replaceWith(document.importNode(fresh, true));
          });
          refreshTimes(document);
          current = -1;
        })
        .catch(function () { /* the next event retries */ });
    };
    var es = new EventSource("/api/v1/events");
    es.onopen = function () { if (badge) { badge.textContent = "● live"; badge.className = "stream on"; } };
    es.onerror = function () { if (badge) { badge.textContent = "○ reconnecting"; badge.className = "stream off"; } };
    es.onmessage = function (ev) {
      if (mine) {
        try { if (JSON.parse(ev.data).incident.id !== mine) return; } catch (e) { return; }
      }
      if (!pending) pending = setTimeout(reload, 250);
    };
    window.addEventListener("pagehide", function () { es.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    refreshTimes(document);
    setInterval(function () { refreshTimes(document); }, 15000);
    names();
    live();
  });
})();
