// Herald's live events: connects to GET /admin/live (a WebSocket, same origin, the session
// cookie) and dispatches each message as a "herald:live" CustomEvent on document, its
// parsed JSON in event.detail ({type: "subscriber.created", ...}, see admin/live.py).
// No dependencies and nothing inline, so it runs under the CSP nonce as a plain
// <script src=... nonce=...>. Reconnects with exponential backoff and full jitter; stops
// after close code 1008 (signed out or session expired) and dispatches
// {type: "closed", code} then. Also {type: "open"} / {type: "down"} when the
// connection comes up or goes away, so tiles can show they are stale.
(function () {
  "use strict";
  if (window.heraldLive || !("WebSocket" in window)) {
    return;
  }
  var BASE_DELAY = 1000;
  var MAX_DELAY = 60000;
  var SILENCE = 60000; // the server pings every 20 s: a silent socket is dead
  var attempt = 0;
  var socket = null;
  var retryTimer = null;
  var silenceTimer = null;
  var stopped = false;

  function emit(detail) {
    document.dispatchEvent(new CustomEvent("herald:live", { detail: detail }));
  }

  function url() {
    var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/admin/live";
  }

  function watchSilence() {
    window.clearTimeout(silenceTimer);
    silenceTimer = window.setTimeout(function () {
      if (socket) {
        socket.close(4000, "silent"); // onclose reconnects
      }
    }, SILENCE);
  }

  function schedule() {
    if (stopped || retryTimer !== null) {
      return;
    }
    var ceiling = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, attempt));
    attempt += 1;
    var delay = ceiling / 2 + Math.random() * (ceiling / 2);
    retryTimer = window.setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (stopped) {
      return;
    }
    var ws;
    try {
      ws = new WebSocket(url());
    } catch (err) {
      schedule();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      attempt = 0;
      watchSilence();
      emit({ type: "open" });
    };
    ws.onmessage = function (message) {
      watchSilence();
      var detail;
      try {
        detail = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (detail && detail.type !== "ping") {
        emit(detail);
      }
    };
    ws.onclose = function (event) {
      window.clearTimeout(silenceTimer);
      if (socket === ws) {
        socket = null;
      }
      if (event.code === 1008) {
        stopped = true; // signed out: reconnecting would be refused
        emit({ type: "closed", code: event.code });
        return;
      }
      emit({ type: "down", code: event.code });
      schedule();
    };
  }

  // A tab in the background keeps its socket; one that comes back online retries at once.
  window.addEventListener("online", function () {
    if (!socket && !stopped) {
      window.clearTimeout(retryTimer);
      retryTimer = null;
      attempt = 0;
      connect();
    }
  });

  window.heraldLive = {
    stop: function () {
      stopped = true;
      window.clearTimeout(retryTimer);
      if (socket) {
        socket.close(1000, "bye");
      }
    },
  };
  connect();
})();
