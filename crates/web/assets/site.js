// Progressive enhancement only: every page works without this file.
// - A form with errors: focus moves to the error summary, so screen readers announce it
//   and keyboard users start there; a summary link focuses its field.
// - A submitted form disables its submit button once, against double submission.
(function () {
  "use strict";
  var summary = document.querySelector(".error-summary");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (ev) {
      var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
      if (!a) return;
      var el = document.getElementById(a.getAttribute("href").slice(1));
      if (el) {
        ev.preventDefault();
        el.focus();
        el.scrollIntoView({ block: "center" });
      }
    });
  }
  var forms = document.querySelectorAll("form[method='post']");
  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type='submit']");
      if (button) {
        window.setTimeout(function () { button.disabled = true; }, 0);
      }
    });
  });
})();
