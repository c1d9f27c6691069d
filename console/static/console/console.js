// What every console page shares: "Copy" buttons. A button copies its data-copy text, or the value of
// the field named by data-copy-from, and then says "Copied" (or "Select and copy" when the browser
// allowed neither way, with the text selected for Ctrl+C). The fields stay selectable without this.
(function () {
  "use strict";

  function copyBySelection(text) {
    var field = document.createElement("textarea");
    field.value = text; field.setAttribute("readonly", ""); field.style.position = "fixed"; field.style.opacity = "0";
    document.body.appendChild(field); field.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (error) { done = false; }
    field.remove();
    return done;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.copy");
    if (!button) return;
    var source = button.dataset.copyFrom && document.getElementById(button.dataset.copyFrom);
    var text = source ? source.value : button.dataset.copy;
    var said = function (ok) {
      button.textContent = ok ? "Copied" : "Select and copy";
      button.dataset.copied = ok ? "yes" : "no";
      if (!ok && source) { source.focus(); source.select(); }
    };
    if (navigator.clipboard && window.isSecureContext) {
      // The asynchronous clipboard can refuse (no permission, page not focused): then the old way.
      navigator.clipboard.writeText(text).then(function () { said(true); },
                                               function () { said(copyBySelection(text)); });
    } else {
      said(copyBySelection(text));
    }
  });
})();
