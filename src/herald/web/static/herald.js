// Herald's page script (every page with a CSP nonce; nothing here is needed for a page to work).
// Loaded in <head> without defer, so a saved theme applies before the first paint:
// - the theme toggle: light/dark over the system's preference, remembered in localStorage;
// - the account menu (a <details>) closes on Escape and on a click elsewhere.
// Flash messages are <details open> with a close <summary>: dismissible without script.
(function () {
  "use strict";
  var root = document.documentElement;
  var KEY = "herald-theme";

  function load() {
    try {
      return window.localStorage.getItem(KEY);
    } catch (e) {
      return null;
    }
  }

  function save(value) {
    try {
      if (value) {
        window.localStorage.setItem(KEY, value);
      } else {
        window.localStorage.removeItem(KEY);
      }
    } catch (e) {
      // storage refused (private mode): the choice lasts for this page only
    }
  }

  function systemDark() {
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function effective() {
    return root.getAttribute("data-theme") || (systemDark() ? "dark" : "light");
  }

  var saved = load();
  if (saved === "light" || saved === "dark") {
    root.setAttribute("data-theme", saved);
  }

  function setUpToggle() {
    var toggle = document.querySelector("[data-theme-toggle]");
    if (!toggle) {
      return;
    }
    function show() {
      toggle.setAttribute("aria-pressed", effective() === "dark" ? "true" : "false");
      toggle.title = effective() === "dark" ? "Switch to the light theme" : "Switch to the dark theme";
    }
    toggle.addEventListener("click", function () {
      var next = effective() === "dark" ? "light" : "dark";
      if ((next === "dark") === systemDark()) {
        root.removeAttribute("data-theme"); // back to following the system
        save(null);
      } else {
        root.setAttribute("data-theme", next);
        save(next);
      }
      show();
    });
    show();
    toggle.hidden = false;
  }

  function setUpMenus() {
    var menus = document.querySelectorAll("details[data-menu]");
    if (!menus.length) {
      return;
    }
    document.addEventListener("click", function (event) {
      for (var i = 0; i < menus.length; i += 1) {
        if (menus[i].open && !menus[i].contains(event.target)) {
          menus[i].open = false;
        }
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key !== "Escape") {
        return;
      }
      for (var i = 0; i < menus.length; i += 1) {
        if (menus[i].open) {
          menus[i].open = false;
          menus[i].querySelector("summary").focus();
        }
      }
    });
  }

  function ready() {
    setUpToggle();
    setUpMenus();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
