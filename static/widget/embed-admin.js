/* The bot admin's embed block (widget/embed.py): copies the snippet to the clipboard, with a
   selection fallback where the Clipboard API is unavailable (plain http on a custom host). */
(function () {
  "use strict";

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var code = document.getElementById(button.getAttribute("data-copy"));
    var status = button.parentNode.querySelector(".parley-embed-copied");
    if (!code) return;
    function say(text) {
      if (status) status.textContent = text;
    }
    function fallback() {
      selectText(code);
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      say(copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(code.textContent).then(function () { say("Copied."); }, fallback);
    } else {
      fallback();
    }
  });
})();
