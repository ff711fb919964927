// The dashboard's live tiles and charts (admin/templates/admin/dashboard.html). The
// figures come server-rendered (and as JSON in #dashboard-figures); the page works
// without this script. With it: uPlot charts of the per-day figures, and tiles that
// follow "herald:live" events from live.js — counted in place for one subscriber,
// refetched from /admin/dashboard/figures after a resync, a reconnect or a change
// whose effect is not known here (an unsubscribe or deletion: from which status?).
(function () {
  "use strict";
  var source = document.getElementById("dashboard-figures");
  if (!source) {
    return;
  }
  var figures = JSON.parse(source.textContent);
  var state = document.querySelector("[data-live-state]");
  var charts = [];
  var refetchTimer = null;
  var opened = false;

  function format(n) {
    return Number(n).toLocaleString("en-US");
  }

  function age(seconds) {
    if (seconds < 1) return "none waiting";
    if (seconds < 120) return Math.round(seconds) + " s";
    if (seconds < 7200) return Math.round(seconds / 60) + " min";
    return (Math.round(seconds / 360) / 10) + " h";
  }

  function setTile(name, text) {
    var el = document.querySelector('[data-tile="' + name + '"]');
    if (!el || el.textContent === text) {
      return;
    }
    el.textContent = text;
    el.classList.remove("changed");
    void el.offsetWidth; // restart the animation
    el.classList.add("changed");
  }

  function lastIndex() {
    return figures.days.day.length - 1;
  }

  function showTiles() {
    var c = figures.counts;
    var i = lastIndex();
    setTile("confirmed", format(c.confirmed));
    setTile("pending_confirmation", format(c.pending_confirmation));
    setTile("unsubscribed", format(c.unsubscribed));
    setTile("today-subscribed", format(figures.days.subscribed[i]));
    setTile("today-confirmed", format(figures.days.confirmed[i]));
    setTile("today-unsubscribed", format(figures.days.unsubscribed[i]));
    setTile("queued", format(figures.queue.queued) + (figures.queue.capped ? "+" : ""));
    setTile("sending", format(figures.queue.sending));
    setTile("oldest", age(figures.queue.oldest_ready_seconds));
  }

  function setCell(row, name, value) {
    var cell = row.querySelector('[data-cell="' + name + '"]');
    if (cell && value !== null && value !== undefined) {
      var link = cell.querySelector("a");
      (link || cell).textContent = format(value);
    }
  }

  function showIssue(issue) {
    var row = document.querySelector('tr[data-issue="' + issue.issue_id + '"]');
    if (!row) {
      return false;
    }
    var status = row.querySelector('[data-cell="status"]');
    if (status && issue.status) {
      status.textContent = issue.status;
      status.className = "status status-" + issue.status;
    }
    setCell(row, "recipients", issue.recipients);
    setCell(row, "sent", issue.sent);
    setCell(row, "failed", issue.failed);
    setCell(row, "suppressed", issue.suppressed);
    return true;
  }

  function chartData() {
    var xs = figures.days.day.map(function (d) {
      return Date.parse(d + "T12:00:00Z") / 1000;
    });
    return {
      growth: [xs, figures.days.confirmed_total, figures.days.pending_total],
      activity: [xs, figures.days.confirmed, figures.days.unsubscribed],
    };
  }

  function color(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function drawCharts() {
    if (!window.uPlot) {
      return;
    }
    charts.forEach(function (chart) {
      chart.plot.destroy();
    });
    charts = [];
    document.querySelectorAll("[data-js-only]").forEach(function (el) {
      el.hidden = false; // the charts and their headings: nothing to show without script
    });
    var data = chartData();
    var text = color("--muted", "#596273");
    var grid = color("--border", "#dde1e8");
    var axes = [
      { stroke: text, grid: { stroke: grid }, ticks: { stroke: grid } },
      { stroke: text, grid: { stroke: grid }, ticks: { stroke: grid }, size: 56 },
    ];
    var specs = {
      growth: [
        { label: "Confirmed", stroke: color("--accent", "#3451c7"), width: 2, fill: color("--accent-soft", "#e7ecfd") },
        { label: "Pending", stroke: color("--warn-fg", "#6f4d00"), width: 1.5 },
      ],
      activity: [
        { label: "Confirmations", stroke: color("--ok-fg", "#1c6431"), width: 2 },
        { label: "Unsubscribes", stroke: color("--err-fg", "#9e1f27"), width: 2 },
      ],
    };
    document.querySelectorAll("[data-chart]").forEach(function (target) {
      var kind = target.getAttribute("data-chart");
      var width = Math.max(240, target.clientWidth);
      var plot = new window.uPlot(
        {
          width: width,
          height: width < 500 ? 180 : 240,
          series: [{ label: "Day (UTC)" }].concat(specs[kind]),
          axes: axes,
          scales: { x: { time: true } },
          cursor: { drag: { x: false, y: false } },
        },
        data[kind],
        target
      );
      charts.push({ plot: plot, kind: kind, target: target });
    });
  }

  // At most one refetch per delay, however many events ask for one meanwhile.
  function refetch(delay) {
    if (refetchTimer !== null) {
      return;
    }
    refetchTimer = window.setTimeout(function () {
      refetchTimer = null;
      fetch("/admin/dashboard/figures?days=" + figures.period, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (fresh) {
          if (!fresh) return;
          figures = fresh;
          showTiles();
          fresh.issues.forEach(showIssue);
          var data = chartData();
          charts.forEach(function (chart) {
            chart.plot.setData(data[chart.kind]);
          });
        })
        .catch(function () {});
    }, delay || 300);
  }

  function bump(field, status, delta) {
    var i = lastIndex();
    figures.days[field][i] += 1;
    figures.counts[status] += delta;
  }

  function showState(kind, text) {
    if (state) {
      state.setAttribute("data-state", kind);
      state.textContent = text;
    }
  }

  document.addEventListener("herald:live", function (event) {
    var e = event.detail || {};
    switch (e.type) {
      case "open":
        showState("live", "Live. Days are UTC.");
        if (opened) refetch(); // events may have been missed while away
        opened = true;
        return;
      case "down":
        showState("down", "Reconnecting… Days are UTC.");
        return;
      case "closed":
        showState("down", "Not live: signed out. Days are UTC.");
        return;
      case "subscriber.created":
        bump("subscribed", "pending_confirmation", 1);
        if (e.resubscribed) figures.counts.unsubscribed -= 1; // back from unsubscribed
        showTiles();
        return;
      case "subscriber.confirmed":
        figures.counts.pending_confirmation -= 1;
        bump("confirmed", "confirmed", 1);
        showTiles();
        return;
      case "issue.progress":
        var queued = (e.queued || 0) + (e.sending || 0);
        var sent = e.recipients === null ? null : Math.max(0, e.recipients - queued - (e.failed || 0) - (e.suppressed || 0));
        if (!showIssue({ issue_id: e.issue_id, status: e.status, recipients: e.recipients, sent: sent, failed: e.failed, suppressed: e.suppressed })) {
          return;
        }
        refetch(3000); // the queue tiles, now and then
        return;
      case "job.progress": // a bulk action under way, in whichever process runs it
        refetch(3000);
        return;
      case "job.finished":
      case "subscriber.unsubscribed":
      case "subscriber.deleted":
      case "subscribers.changed":
      case "issue.status":
      case "resync":
        refetch();
        return;
    }
  });

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      charts.forEach(function (chart) {
        var width = Math.max(240, chart.target.clientWidth);
        chart.plot.setSize({ width: width, height: width < 500 ? 180 : 240 });
      });
    }, 150);
  });
  // Theme toggles (herald.js) and the system's scheme change the custom properties:
  // redraw with the new colours.
  new MutationObserver(drawCharts).observe(document.documentElement, {
    attributes: true,
    attributeFilter: ["data-theme"],
  });
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", drawCharts);
  }
  drawCharts();
})();
