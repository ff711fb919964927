// The email design pages (Settings → Branding, a layout's editor). Without this script
// every form still works: Preview posts into the sandboxed frame, Save saves.
// With it: the accent's colour picker and hex field follow each other, and a form marked
// data-live-preview re-posts itself into its preview frame (a fresh frame each time, so the
// back button's history stays clean) a moment after the last keystroke.
(function () {
  "use strict";
  var picker = document.getElementById("accent-picker");
  var hex = document.getElementById("accent");
  var HEX = /^#?[0-9a-fA-F]{6}$/;
  if (picker && hex) {
    picker.addEventListener("input", function () {
      hex.value = picker.value;
    });
    hex.addEventListener("input", function () {
      if (HEX.test(hex.value.trim())) {
        var value = hex.value.trim();
        picker.value = (value.charAt(0) === "#" ? value : "#" + value).toLowerCase();
      }
    });
  }

  var DELAY_MS = 500;
  var forms = document.querySelectorAll("form[data-live-preview]");
  Array.prototype.forEach.call(forms, function (form) {
    var button = document.getElementById(form.getAttribute("data-live-preview"));
    if (!button || typeof form.requestSubmit !== "function") {
      return;
    }
    var frameName = button.getAttribute("formtarget");
    var timer = null;

    function refresh() {
      var shown = document.getElementById(frameName);
      if (shown) {
        var fresh = shown.cloneNode(false);
        fresh.removeAttribute("src");
        shown.replaceWith(fresh);
      }
      form.requestSubmit(button);
    }

    form.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DELAY_MS);
    });
    if (form.hasAttribute("data-preview-now")) {
      refresh(); // the page came back with a refused value: show what was typed
    }
  });
})();
