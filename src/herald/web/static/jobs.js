// Live progress of background jobs (bulk actions) listed on a page: each
// [data-job-id] block follows the "job.progress" and "job.finished" events that live.js
// dispatches. After a "resync" (events were dropped: a burst, a reconnect) the blocks
// are replaced by the page's current ones, fetched again. Without JavaScript the page
// shows the state as of its loading.
(function () {
  "use strict";

  var refreshing = false;

  function refreshBlocks() {
    var blocks = document.querySelectorAll("[data-job-id]");
    if (!blocks.length || refreshing) {
      return;
    }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        blocks.forEach(function (block) {
          var now = fresh.querySelector('[data-job-id="' + block.getAttribute("data-job-id") + '"]');
          if (now) {
            block.replaceWith(document.importNode(now, true));
          }
        });
      })
      .catch(function () {})
      .then(function () {
        refreshing = false;
      });
  }

  function count(n) {
    return Number(n).toLocaleString("en-US");
  }

  document.addEventListener("herald:live", function (event) {
    var detail = event.detail || {};
    if (detail.type === "resync") {
      refreshBlocks();
      return;
    }
    if (detail.type !== "job.progress" && detail.type !== "job.finished") {
      return;
    }
    var block = document.querySelector('[data-job-id="' + detail.job_id + '"]');
    if (!block) {
      return;
    }
    var state = block.querySelector("[data-job-state]");
    var bar = block.querySelector("[data-job-bar]");
    var seen = (detail.done || 0) + (detail.skipped || 0);
    if (detail.type === "job.finished" || (detail.status !== "running" && detail.status !== "queued")) {
      if (state) {
        state.textContent = detail.message || detail.status;
      }
      var run = block.querySelector(".job-run");
      if (run) {
        run.remove();
      }
      block.className = "card job job-" + detail.status;
      return;
    }
    if (bar) {
      if (detail.total) {
        bar.max = detail.total;
      }
      bar.value = seen;
    }
    if (state) {
      state.textContent = count(seen) + (detail.total ? " of " + count(detail.total) : "") + " done";
    }
  });
})();
