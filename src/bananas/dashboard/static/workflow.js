// Bananas dashboard, workflow page: poll the workflow's JSON and recolor the
// graph's nodes (their state, detail and error) until the workflow is final.
// Text only goes in through textContent: names and errors come from users.
"use strict";
(function () {
  var KEY = "bananas-dashboard-live";

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }

  function apply(wf) {
    var badge = document.getElementById("wf-state");
    if (badge) { badge.textContent = wf.state; badge.className = "badge state-" + wf.state; }
    text("wf-done", Number(wf.done).toLocaleString("en-US"));
    var failed = document.getElementById("wf-failed");
    if (failed && wf.failed_step) {
      failed.hidden = false;
      var link = document.getElementById("wf-failed-step");
      link.textContent = wf.failed_step;
      link.setAttribute("href", link.getAttribute("href").replace(/[^/]*$/, encodeURIComponent(wf.failed_step)));
      text("wf-failed-name", wf.failed_name || "");
      text("wf-error", wf.error || "");
    }
    document.querySelectorAll("#wf-graph g.wf-node").forEach(function (g) {
      var n = wf.nodes[g.getAttribute("data-node")];
      if (!n) return;
      g.setAttribute("data-state", n.state);
      if (n.counts) {  // a collapsed group: one line per state
        g.querySelectorAll("text[data-count]").forEach(function (line) {
          var count = n.counts[line.getAttribute("data-count")] || 0;
          line.querySelector(".wf-n").textContent = count.toLocaleString("en-US");
          line.classList.toggle("wf-zero", !count);
        });
      } else {
        g.querySelector(".wf-state").textContent = n.state;
        var detail = n.detail.length > 30 ? n.detail.slice(0, 29) + "\u2026" : n.detail;
        g.querySelector(".wf-detail").textContent = detail;
      }
      var title = g.querySelector("title");
      if (title) {
        var parts = title.textContent.split(" \u00b7 ");
        title.textContent = [parts[0], n.state].concat(n.detail ? [n.detail] : [], n.error ? [n.error] : []).join(" \u00b7 ");
      }
    });
  }

  function start() {
    var box = document.getElementById("wf-graph");
    var url = box && box.getAttribute("data-poll");
    var period = parseInt((box && box.getAttribute("data-poll-ms")) || "0", 10);
    if (!url || !period) return;
    // The next poll is timed from the end of the last one: a slow read
    // (a 10,000-step workflow) never piles up requests.
    function later() { window.setTimeout(poll, period); }
    function poll() {
      var toggle = document.getElementById("live-toggle");
      var paused = (toggle && !toggle.checked) || localStorage.getItem(KEY) === "off";
      if (paused || document.visibilityState !== "visible") { later(); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (wf) {
          if (wf) apply(wf);
          if (wf && wf.state !== "running") box.setAttribute("data-final", wf.state);
          else later();
        })
        .catch(later);  // broker or network hiccup: try again next tick
    }
    later();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
