// Live progress of background jobs (bulk actions) listed on a page: each
// [data-job-id] block follows the "job.progress" and "job.finished" events that live.js
// dispatches. Without JavaScript the page shows the state as of its loading.
(function () {
  "use strict";

  function count(n) {
    return Number(n).toLocaleString("en-US");
  }

  document.addEventListener("herald:live", function (event) {
    var detail = event.detail || {};
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
