// errors.js — a classic script loaded before everything else: any uncaught
// error or unhandled rejection in the page is shown in the #page-error banner
// (and kept in window.__berthErrors for tests), never lost in a console.
(function () {
  "use strict";
  var errors = (window.__berthErrors = []);
  function show(text) {
    errors.push(text);
    var el = document.getElementById("page-error");
    if (!el) return;
    el.textContent = "Something went wrong in this window: " + text;
    el.hidden = false;
  }
  window.addEventListener("error", function (e) {
    show((e.message || "error") + (e.filename ? " (" + e.filename.split("/").pop() + ":" + e.lineno + ")" : ""));
  });
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    show(String((r && r.message) || r));
  });
})();
