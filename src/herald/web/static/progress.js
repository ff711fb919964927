// Live delivery progress on the issue page: server-sent events from
// /admin/issues/{id}/events update the <progress> bar, the counts, the rate and ETA,
// and the status.
// Loaded as an external file with the page's CSP nonce; no inline handlers.
(function () {
  "use strict";
  var root = document.getElementById("progress");
  if (!root || typeof window.EventSource !== "function") {
    return;
  }
  var status = root.getAttribute("data-status");
  if (status !== "publishing" && status !== "scheduled") {
    return; // a draft has nothing to follow yet; a sent issue is final
  }
  var bar = document.getElementById("progress-bar");
  var summary = document.getElementById("progress-summary");
  var statusText = document.getElementById("issue-status");
  var done = document.getElementById("progress-done");
  var source = new EventSource(root.getAttribute("data-events"));

  function show(progress) {
    // Progress.percent is 100 for an issue with no deliveries yet (a scheduled one).
    var started = progress.status === "publishing" || progress.status === "sent";
    var percent = started ? progress.percent : 0;
    bar.value = percent;
    bar.textContent = percent + "%";
    var recipients = Number(progress.recipients).toLocaleString("en-US");
    if (progress.fanning_out) {
      summary.textContent = "Queueing recipients: " + recipients +
        " so far; " + percent + "% of those done.";
    } else {
      summary.textContent = started
        ? percent + "% of " + recipients + " recipients"
        : "Not published yet.";
    }
    var fanoutError = document.getElementById("fanout-error");
    var fanoutErrorText = document.getElementById("fanout-error-text");
    if (fanoutError && fanoutErrorText) {
      fanoutErrorText.textContent = progress.fanout_error || "";
      fanoutError.hidden = !progress.fanout_error;
    }
    var figures = document.getElementById("progress-figures");
    var rate = document.getElementById("progress-rate");
    var eta = document.getElementById("progress-eta");
    if (figures && rate && eta) {
      figures.hidden = !started;
      rate.textContent = progress.rate_per_min === null || progress.rate_per_min === undefined
        ? "—" : Math.round(progress.rate_per_min).toLocaleString("en-US");
      if (progress.status === "sent") {
        eta.textContent = "done";
      } else if (progress.eta_seconds === null || progress.eta_seconds === undefined) {
        eta.textContent = "—";
      } else {
        eta.textContent = Math.floor(progress.eta_seconds / 60) + " min " +
          (progress.eta_seconds % 60) + " s";
      }
    }
    statusText.textContent = progress.status;
    statusText.className = "status status-" + progress.status;
    root.setAttribute("data-status", progress.status);
    var cells = root.querySelectorAll("[data-count]");
    for (var i = 0; i < cells.length; i += 1) {
      var name = cells[i].getAttribute("data-count");
      if (Object.prototype.hasOwnProperty.call(progress, name)) {
        cells[i].textContent = String(progress[name]);
      }
    }
    if (progress.status === "sent") {
      source.close(); // the server ends the stream; do not let EventSource reconnect
      done.hidden = false;
    }
  }

  source.addEventListener("progress", function (event) {
    show(JSON.parse(event.data));
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
