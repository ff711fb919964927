// The schedule form: preselect the browser's time zone (unless the editor chose one
// before, which the server remembered), so "09:30" means 09:30 where the editor is.
// Without this script the select shows UTC or the remembered zone; the server reads
// the wall-clock time in the zone chosen, daylight saving included.
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) {
    return;
  }
  var zone = form.querySelector("select[name=timezone]");
  if (!zone || zone.getAttribute("data-remembered") === "yes") {
    return;
  }
  var browserZone = "";
  try {
    browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    return;
  }
  for (var i = 0; i < zone.options.length; i += 1) {
    if (zone.options[i].value === browserZone) {
      zone.selectedIndex = i;
      return;
    }
  }
})();
