// The dashboard's live progress (publisher/web/admin/digests.py serves this file).
// Each element with data-progress-url holds a <progress> and a short aria-live="polite"
// status line ([data-status]); without this script they show the figures as they were when
// the page loaded (templates/admin/_progress.html).  Every few seconds, while the tab is visible,
// the script reads the digest's progress JSON and updates them; it stops for a digest once
// it is finished, and the status line changes only when its words do.
"use strict";
(function () {
  var EVERY = 3000; // milliseconds between reads
  var format = new Intl.NumberFormat("en-US");

  function words(data) {
    var state = data.status === "paused" ? "Paused" : data.finished ? "Finished" : "Sending";
    return state + ": " + format.format(data.sent) + " of " + format.format(data.total) + " sent.";
  }

  function show(box, data) {
    var bar = box.querySelector("progress");
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = data.sent;
    }
    var line = box.querySelector("[data-status]");
    var said = words(data);
    if (line && line.textContent !== said) {
      line.textContent = said;
    }
  }

  function watch(box) {
    var url = box.getAttribute("data-progress-url");
    var timer = null;
    var done = false;
    var busy = false; // a read under way: no second one beside it

    function later() {
      busy = false;
      clearTimeout(timer);
      timer = done || document.hidden ? null : setTimeout(read, EVERY);
    }

    function read() {
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            done = true; // signed out (or the session ended): the page's figures stay as they were
          }
          return response.ok ? response.json() : null;
        })
        .then(function (data) {
          if (data) {
            show(box, data);
            done = data.finished;
          }
        })
        .catch(function () { /* the next read tries again */ })
        .then(later);
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
      } else if (!done && timer === null && !busy) {
        read();
      }
    });
    later();
  }

  document.querySelectorAll("[data-progress-url]").forEach(watch);
})();
