// Copy buttons: <button data-copy="ID" hidden> copies the value of the element #ID (a
// read-only textarea, which works without this script: select and copy by hand).
(function () {
  "use strict";
  function status(button, text) {
    var out = button.parentNode.querySelector("[data-copy-status]");
    if (out) { out.textContent = text; }
  }
  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var done = function () { status(button, "Copied."); };
    var byHand = function () {
      source.focus();
      source.select();
      status(button, "Selected: press Ctrl+C (⌘C) to copy.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, byHand);
    } else {
      byHand();
    }
  }
  function start() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { copy(button); });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
