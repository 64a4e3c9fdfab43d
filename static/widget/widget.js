/* Parley widget: <script src="https://<tenant-host>/widget.js" data-bot="<public id>" async>
 *
 * Adds a launcher button and a panel that holds the bot's hosted chat page in an iframe.
 * - Leaves one global, window.Parley (open, close, toggle), and nothing else.
 * - No style leaks either way: the launcher and panel live in a Shadow DOM whose
 *   host resets every inherited property; the chat itself is isolated by the iframe.
 * - Finds its tenant host from its own src (works loaded async), then reads the bot's
 *   launcher settings from /chat/<id>/config.json, which answers with CORS only for the
 *   bot's allowed origins: on any other site the widget stays hidden (the chat page's
 *   frame-ancestors would refuse to show there anyway).
 * - The iframe is created on first open, so pages that never open the chat load nothing
 *   else and open no socket.
 * - Keyboard: the launcher is a button (Enter/Space); Escape closes (also from inside the
 *   chat, which posts "close" to us); focus moves into the chat on open and back to the
 *   launcher on close.
 */
(function (w, d) {
  "use strict";

  if (w.Parley && w.Parley.version) return; /* the snippet pasted twice */

  var script = d.currentScript || d.querySelector('script[src*="/widget.js"][data-bot]');
  var api = { version: "1", open: noop, close: noop, toggle: noop };
  w.Parley = api;

  function noop() {}
  function warn(message) {
    if (w.console) w.console.warn("Parley widget: " + message);
  }

  if (!script || !script.src) return warn("cannot find its own <script> tag.");
  var origin = new URL(script.src, d.baseURI).origin;
  var botId = script.getAttribute("data-bot") || "";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(botId)) return warn('data-bot="<bot public id>" is missing.');
  var autoOpen = script.getAttribute("data-open") === "true";

  var SVG = "http://www.w3.org/2000/svg";
  var CHAT_ICON = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  var CLOSE_ICON = "M6 6l12 12M18 6 6 18";

  var CSS = [
    ":host{all:initial!important;display:block!important;position:fixed!important;",
    "z-index:2147483000!important;inset:auto!important;width:0!important;height:0!important;",
    "margin:0!important;padding:0!important;border:0!important;transform:none!important}",
    "*{box-sizing:border-box;margin:0;padding:0;font:inherit}",
    ".launcher{all:initial;position:fixed;bottom:20px;SIDE:20px;width:56px;height:56px;",
    "border-radius:50%;background:ACCENT;color:ON;cursor:pointer;display:grid;place-items:center;",
    "box-shadow:0 6px 20px rgba(0,0,0,.22),0 2px 6px rgba(0,0,0,.14);transition:transform .15s ease;",
    "font:600 13px/1 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif}",
    ".launcher:hover{transform:scale(1.05)}",
    ".launcher:focus-visible{outline:3px solid ACCENT;outline-offset:3px}",
    ".launcher svg{width:26px;height:26px;display:block}",
    ".launcher img{width:56px;height:56px;border-radius:50%;object-fit:cover;display:block}",
    ".launcher .x{display:none}",
    ".open .launcher .x{display:block}.open .launcher .face{display:none}",
    ".badge{position:absolute;top:-3px;right:-3px;min-width:20px;height:20px;padding:0 5px;",
    "border-radius:10px;background:#e11d48;color:#fff;font:700 12px/20px system-ui,sans-serif;",
    "text-align:center;box-shadow:0 0 0 2px #fff}",
    ".badge[hidden]{display:none}",
    ".panel{position:fixed;bottom:88px;SIDE:20px;width:380px;height:min(640px,calc(100vh - 108px));",
    "height:min(640px,calc(100dvh - 108px));border-radius:16px;overflow:hidden;background:#fff;",
    "box-shadow:0 12px 48px rgba(0,0,0,.28),0 2px 8px rgba(0,0,0,.12);",
    "opacity:0;transform:translateY(12px) scale(.98);transform-origin:bottom SIDE;",
    "transition:opacity .18s ease,transform .18s ease;visibility:hidden}",
    ".open .panel{opacity:1;transform:none;visibility:visible}",
    "iframe{display:block;width:100%;height:100%;border:0;background:#fff;color-scheme:normal}",
    "@media (max-width:480px){.panel{inset:0;width:100%;height:100%;border-radius:0}",
    ".open .launcher{display:none}}",
    "@media (prefers-reduced-motion:reduce){.panel,.launcher{transition:none}}"
  ].join("");

  function icon(pathData, cls, stroke) {
    var svg = d.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", cls);
    var path = d.createElementNS(SVG, "path");
    path.setAttribute("d", pathData);
    if (stroke) {
      path.setAttribute("fill", "none");
      path.setAttribute("stroke", "currentColor");
      path.setAttribute("stroke-width", "2.2");
      path.setAttribute("stroke-linecap", "round");
    } else {
      path.setAttribute("fill", "currentColor");
    }
    svg.appendChild(path);
    return svg;
  }

  function text(value, fallback) {
    return typeof value === "string" && value ? value : fallback;
  }

  function mount(cfg) {
    var color = /^#[0-9a-f]{6}$/i.test(cfg.color) ? cfg.color : "#4f46e5";
    var onColor = /^#[0-9a-f]{6}$/i.test(cfg.textColor) ? cfg.textColor : "#ffffff";
    var side = cfg.position === "left" ? "left" : "right";
    var strings = cfg.strings || {};
    var title = text(cfg.title, "Chat");
    var css = CSS.replace(/ACCENT/g, color).replace(/\bON\b/g, onColor).replace(/SIDE/g, side);

    var host = d.createElement("parley-widget");
    /* open: the host page can script its own document anyway; open lets devtools and tests in */
    var root = host.attachShadow({ mode: "open" });
    /* A constructed stylesheet is not an inline <style>: host pages with a strict
       style-src still style us. Older browsers get a <style> element. */
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      var style = d.createElement("style");
      style.textContent = css;
      root.appendChild(style);
    }

    var wrap = d.createElement("div");
    var panel = d.createElement("div");
    panel.className = "panel";
    panel.id = "parley-panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", title);
    panel.inert = true; /* shown and hidden by the .open class, so that it can animate */

    var launcher = d.createElement("button");
    launcher.type = "button";
    launcher.className = "launcher";
    launcher.setAttribute("aria-controls", "parley-panel");
    launcher.setAttribute("aria-expanded", "false");
    if (cfg.avatarUrl && /^https?:\/\//.test(cfg.avatarUrl)) {
      var img = d.createElement("img");
      img.src = cfg.avatarUrl;
      img.alt = "";
      img.className = "face";
      img.referrerPolicy = "no-referrer";
      launcher.appendChild(img);
    } else {
      launcher.appendChild(icon(CHAT_ICON, "face", false));
    }
    launcher.appendChild(icon(CLOSE_ICON, "x", true));
    var badge = d.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    badge.setAttribute("aria-hidden", "true");
    launcher.appendChild(badge);

    /* launcher first: Tab goes launcher → chat, Shift+Tab from the chat back to it */
    wrap.appendChild(launcher);
    wrap.appendChild(panel);
    root.appendChild(wrap);

    var frame = null;
    var loaded = false;
    var isOpen = false;
    var unread = 0;
    var moveFocus = true;

    function label() {
      var base = (isOpen ? text(strings.close, "Close chat") : text(strings.open, "Open chat")) + ": " + title;
      if (unread && !isOpen) base += " (" + text(strings.unread, "%(n)s new").replace("%(n)s", unread) + ")";
      launcher.setAttribute("aria-label", base);
      launcher.title = base;
    }

    function focusChat() {
      if (!frame) return;
      frame.focus();
      frame.contentWindow.postMessage({ parley: "focus" }, origin);
    }

    function open(options) {
      if (isOpen) return;
      var focus = !(options && options.focus === false);
      if (!frame) {
        frame = d.createElement("iframe");
        frame.title = title;
        frame.src = origin + cfg.chatUrl;
        frame.setAttribute("allow", "clipboard-write");
        frame.referrerPolicy = "origin";
        frame.addEventListener("load", function () {
          loaded = true;
          if (isOpen && moveFocus) focusChat();
        });
        panel.appendChild(frame);
      }
      isOpen = true;
      unread = 0;
      badge.hidden = true;
      panel.inert = false;
      wrap.className = "open";
      launcher.setAttribute("aria-expanded", "true");
      label();
      moveFocus = focus;
      if (loaded && focus) focusChat();
    }

    function close() {
      if (!isOpen) return;
      isOpen = false;
      panel.inert = true;
      wrap.className = "";
      launcher.setAttribute("aria-expanded", "false");
      label();
      launcher.focus();
    }

    launcher.addEventListener("click", function () {
      if (isOpen) close(); else open();
    });
    root.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && isOpen) {
        event.stopPropagation();
        close();
      }
    });
    w.addEventListener("message", function (event) {
      if (!frame || event.source !== frame.contentWindow || event.origin !== origin) return;
      var kind = event.data && event.data.parley;
      if (kind === "close") {
        close();
      } else if (kind === "reply" && !isOpen) {
        unread += 1;
        badge.textContent = String(unread);
        badge.hidden = false;
        label();
      }
    });

    api.open = function () { open(); };
    api.close = close;
    api.toggle = function () {
      if (isOpen) close(); else open();
    };
    label();
    (d.body || d.documentElement).appendChild(host);
    if (autoOpen) open({ focus: false }); /* never steal the host page's focus on load */
  }

  w.fetch(origin + "/chat/" + encodeURIComponent(botId) + "/config.json", { credentials: "omit" })
    .then(function (response) {
      if (!response.ok) throw new Error("no bot " + botId + " on " + origin + " (" + response.status + ")");
      return response.json();
    })
    .then(mount)
    .catch(function (error) {
      warn(error.message + ". Is " + location.origin + " one of the bot's allowed origins?");
    });
})(window, document);
