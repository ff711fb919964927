// The issue editor's live preview. While the editor types or toggles the preview's part,
// width or colours (debounced), the form is posted to /admin/issues/preview twice: as
// JSON (the inbox line, the HTML part's size for Gmail's clipping limit, or the template
// error) and into a fresh sandboxed frame (the chosen part as its own document, with its
// own strict policy: the email's HTML is never inserted into this page). A new frame each
// time keeps the back button's history clean. The toggles are radio inputs of the form;
// the width only sets the frame's (CSS, data-width here too). Without this script the
// Preview button posts into the frame, the width toggle still works, Save still saves.
(function () {
  "use strict";
  var form = document.getElementById("issue-editor");
  var pane = document.querySelector(".preview-pane");
  var button = document.getElementById("preview-button");
  if (!form || !pane || !button || typeof window.fetch !== "function") {
    return;
  }
  var stateText = document.getElementById("preview-state");
  var errorBox = document.getElementById("preview-error");
  var clipBox = document.getElementById("preview-clip");
  var sizeText = document.getElementById("preview-size");
  var inbox = document.getElementById("preview-inbox");
  var subject = document.getElementById("preview-subject");
  var preheader = document.getElementById("preview-preheader");
  var clipBytes = Number(pane.getAttribute("data-clip-bytes"));
  var jsonUrl = pane.getAttribute("data-preview-json");
  var DELAY_MS = 400;
  var timer = null;
  var controller = null;
  var serial = 0;

  function chosenFormat() {
    var checked = form.querySelector("input[name=format]:checked");
    return checked ? checked.value : "markdown";
  }

  function showFormat() {
    form.setAttribute("data-format-chosen", chosenFormat());
  }

  function showWidth() {
    var checked = pane.querySelector("input[name=width]:checked");
    pane.setAttribute("data-width", checked ? checked.value : "desktop");
  }

  function kb(bytes) {
    return (bytes / 1024).toFixed(1) + " KB";
  }

  function say(text) {
    stateText.textContent = text;
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    pane.classList.add("is-stale");
    say("The preview shows the last version that rendered.");
  }

  function loadFrame() {
    // A fresh frame for each version: no history entry piles up behind the back button.
    var shown = document.getElementById("preview-frame");
    var fresh = shown.cloneNode(false);
    fresh.removeAttribute("src");
    shown.replaceWith(fresh);
    form.requestSubmit(button);
  }

  function refresh() {
    var mine = ++serial;
    if (controller) {
      controller.abort();
    }
    controller = new AbortController();
    say("Updating…");
    fetch(jsonUrl, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      signal: controller.signal,
    })
      .then(function (response) {
        return response.json().then(
          function (body) { return { status: response.status, body: body }; },
          function () { return { status: response.status, body: {} }; }
        );
      })
      .then(function (result) {
        if (mine !== serial) {
          return;
        }
        if (result.status === 413) {
          showError("The issue is too large to preview (the limit is 2 MiB).");
          return;
        }
        if (result.status !== 200) {
          showError(result.body.message || "The preview failed (" + result.status + ").");
          return;
        }
        var preview = result.body;
        errorBox.hidden = true;
        pane.classList.remove("is-stale");
        subject.textContent = preview.title;
        preheader.textContent = preview.preheader ? "— " + preview.preheader : "";
        inbox.hidden = false;
        sizeText.textContent = "HTML: " + kb(preview.html_bytes) + " (Gmail clips above " +
          Math.round(clipBytes / 1024) + " KB).";
        if (preview.clipped) {
          clipBox.textContent = "The HTML of this email is " + kb(preview.html_bytes) +
            ": Gmail clips emails above " + Math.round(clipBytes / 1024) +
            " KB, so its readers will see only the beginning and a “View entire message” link.";
          clipBox.hidden = false;
        } else {
          clipBox.hidden = true;
        }
        say("As “Sample Subscriber” gets it.");
        loadFrame();
      })
      .catch(function (error) {
        if (error && error.name === "AbortError") {
          return;
        }
        if (mine === serial) {
          showError("The preview could not be reached; it updates when you type again.");
        }
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, DELAY_MS);
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", function (event) {
    if (event.target.name === "format") {
      showFormat();
      schedule();
    }
  });
  // The toggles belong to the form (form="issue-editor") but sit in the pane.
  pane.addEventListener("change", function (event) {
    var name = event.target.name;
    if (name === "width") {
      showWidth();
    } else if (name === "part" || name === "scheme") {
      window.clearTimeout(timer);
      loadFrame(); // the frame alone: the text, size and inbox line do not change
    }
  });
  button.addEventListener("click", function (event) {
    if (!event.isTrusted) {
      return; // our own requestSubmit
    }
    event.preventDefault();
    window.clearTimeout(timer);
    refresh();
  });
  showFormat();
  showWidth();
  var bodies = form.querySelectorAll("textarea");
  for (var i = 0; i < bodies.length; i += 1) {
    if (bodies[i].value.trim()) {
      refresh(); // an issue being edited: show it at once
      break;
    }
  }
})();
