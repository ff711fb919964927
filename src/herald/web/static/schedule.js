// Fill the schedule form's UTC offset from the browser's time zone, for the
// chosen date (so a date across a daylight-saving change gets its own offset).
(function () {
  "use strict";
  var form = document.getElementById("schedule-form");
  if (!form) {
    return;
  }
  var when = form.querySelector("[name=scheduled_at]");
  var offset = form.querySelector("[name=utc_offset]");

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function fill() {
    var date = when.value ? new Date(when.value) : new Date();
    if (isNaN(date.getTime())) {
      return;
    }
    var minutes = -date.getTimezoneOffset(); // minutes ahead of UTC
    var sign = minutes < 0 ? "-" : "+";
    var abs = Math.abs(minutes);
    offset.value = sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  fill();
  when.addEventListener("change", fill);
  form.addEventListener("submit", fill);
})();
