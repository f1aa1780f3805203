// Bananas dashboard: live refresh, bulk selection, confirmations. No dependencies.
"use strict";
(function () {
  var body = document.body;
  var period = parseFloat(body.getAttribute("data-refresh") || "0") * 1000;
  var toggle = document.getElementById("live-toggle");
  var KEY = "bananas-dashboard-live";

  if (toggle) {
    toggle.checked = localStorage.getItem(KEY) !== "off";
    toggle.addEventListener("change", function () {
      localStorage.setItem(KEY, toggle.checked ? "on" : "off");
    });
  }

  function busy(main) {
    // Never swap the page under the user's hands: focus in a form, a selection made.
    var active = document.activeElement;
    if (active && main.contains(active) && /INPUT|SELECT|TEXTAREA|BUTTON/.test(active.tagName)) return true;
    if (main.querySelector("input[type=checkbox]:checked")) return true;
    var sel = window.getSelection && window.getSelection();
    return !!(sel && sel.toString());
  }

  function refresh() {
    var main = document.getElementById("main");
    if (!main || !main.hasAttribute("data-live")) return;
    if ((toggle && !toggle.checked) || document.visibilityState !== "visible" || busy(main)) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html || busy(main)) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (!fresh) return;
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
          return document.importNode(n, true);
        }));
        if (!fresh.hasAttribute("data-live")) main.removeAttribute("data-live");
        var stamp = doc.querySelector("[data-rendered]");
        var mine = document.querySelector("[data-rendered]");
        if (stamp && mine) { mine.textContent = stamp.textContent; mine.setAttribute("datetime", stamp.getAttribute("datetime")); }
        wire();
      })
      .catch(function () { /* broker or network hiccup: try again next tick */ });
  }

  function wire() {
    document.querySelectorAll("form[data-confirm], button[data-confirm]").forEach(function (el) {
      if (el.dataset.wired) return;
      el.dataset.wired = "1";
      var ev = el.tagName === "FORM" ? "submit" : "click";
      el.addEventListener(ev, function (e) {
        if (!window.confirm(el.getAttribute("data-confirm"))) e.preventDefault();
      });
    });
    var all = document.querySelector("[data-select-all]");
    var boxes = document.querySelectorAll("input[type=checkbox][name=ids]");
    var needs = document.querySelectorAll("[data-needs-selection]");
    function sync() {
      var any = Array.prototype.some.call(boxes, function (b) { return b.checked; });
      needs.forEach(function (b) { b.disabled = !any; });
    }
    if (all && !all.dataset.wired) {
      all.dataset.wired = "1";
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        sync();
      });
    }
    boxes.forEach(function (b) {
      if (!b.dataset.wired) { b.dataset.wired = "1"; b.addEventListener("change", sync); }
    });
    sync();
  }

  // A running job's progress, between page refreshes: its JSON every second.
  var FINAL = { completed: 1, dead: 1 };
  function pollProgress() {
    var box = document.getElementById("progress");
    var url = box && box.getAttribute("data-poll");
    if (!url || (toggle && !toggle.checked) || document.visibilityState !== "visible") return;
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (job) {
        if (!job) return;
        if (FINAL[job.state]) box.removeAttribute("data-poll");
        var p = job.progress;
        if (!p) return;
        document.getElementById("progress-bar").value = p.fraction;
        document.getElementById("progress-text").textContent =
          Math.round(p.fraction * 100) + "% " + p.message;
        var ago = Math.max(0, Math.round(Date.now() / 1000 - p.updated_at));
        document.getElementById("progress-meta").textContent =
          "attempt " + p.attempt + ", updated " + ago + "s ago";
      })
      .catch(function () { /* try again next tick */ });
  }

  document.addEventListener("DOMContentLoaded", wire);
  if (period > 0) window.setInterval(refresh, period);
  window.setInterval(pollProgress, 1000);
})();
